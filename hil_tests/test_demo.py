"""`batm-sim demo` (what `make demo` runs) walks the pairing guide and leaves its screenshots:
the terminal's screens and the console pages the operator passed through."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sim.browser import chromium_problem
from sim.prereqs import bin_dir
from sim.testsupport import in_ci


@pytest.mark.usefixtures("sim_prerequisites")
def test_demo_pairs_and_leaves_screenshots(short_tmp_path: Path) -> None:
    out = short_tmp_path / "demo-output"
    try:
        proc = subprocess.run([str(bin_dir() / "batm-sim"), "demo", "--dir", str(out)],
                              capture_output=True, text=True, timeout=180)
    finally:
        subprocess.run([str(bin_dir() / "batm-sim"), "down", "--dir", str(out)],
                       capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    lines = proc.stdout.splitlines()
    terminal = [ln.split()[-1] for ln in lines if "pairing code on the terminal" in ln]
    server = [ln.split()[-3] for ln in lines if "pairing code in the server" in ln]
    assert terminal and terminal == server, proc.stdout
    assert "terminal shows in_service" in proc.stdout
    shots = sorted(p.name for p in out.glob("*/screenshots/[0-9][0-9][0-9]-*.png"))
    if shots:  # without batm-display the demo runs with no screens
        for screen_id in ("set_server", "connecting", "pairing_code", "in_service"):
            assert any(name.endswith(f"-{screen_id}.png") for name in shots), shots
    console_pages = [p.name.split("-", 2)[2] for p in
                     sorted(out.glob("*/screenshots/console-[0-9][0-9]-*.png"))]
    if chromium_problem() is None or in_ci():  # the operator approves in the console
        assert console_pages == ["login.png", "terminals.png", "pairing-requests.png",
                                 "approve.png", "approved.png", "terminals-after.png"], proc.stdout
    assert (out / "logs" / "supervisor.log").exists()
    assert not (out / "rig.json").exists()  # the rig is down
