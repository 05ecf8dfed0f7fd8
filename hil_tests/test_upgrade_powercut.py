"""A power cut (supervisor `kill` = SIGKILL) while the terminal shows `upgrading`: after `start`
the terminal runs a good slot, resumes the download where its journal left it (HTTP Range), and
the upgrade completes - the terminal pairs at 20230801.

The download is slowed with tc tbf on the server's side of the terminal's link (this kernel has
no netem), so "upgrading" lasts seconds and the kill lands at a chosen point of the payload
stream. The agents checkpoint every 4 KiB chunk (BATM_FW_CHECKPOINT_BYTES), so a resume really
starts mid-bundle. (Kills at every persisted step of the install: tests/test_firmware_powercut.py.)
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from hil_tests.rig.screen_recorder import ScreenRecorder
from hil_tests.rig.seed_rig import MIN_VERSION
from sim.naming import RigNames

ARCHAIC = 20190130
TIMEOUT = 30.0
RATE = "96kbit"  # ~12 KB/s: a bundle of ~61 KB streams for about five seconds


def throttle(rig, on: bool) -> None:
    names = RigNames(rig.rig_id)
    cmd = ["ip", "netns", "exec", names.server_netns, "tc", "qdisc",
           "replace" if on else "del", "dev", names.server_veth(0), "root"]
    if on:
        cmd += ["tbf", "rate", RATE, "burst", "1540", "latency", "5s"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=10)


def wait_progress(recorder: ScreenRecorder, percent: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shots = [s for s in recorder.of("upgrading") if (s["progress"] or 0) >= percent]
        if shots:
            return shots[0]
        time.sleep(0.02)
    raise AssertionError(f"no upgrading screen at ≥{percent}% within {timeout:g}s: "
                         f"{recorder.ids()}")


def journal(slots: Path) -> dict:
    return json.loads((slots / "updater" / "journal.json").read_text())


@pytest.mark.parametrize("percent", [20, 50, 75])
def test_power_cut_while_upgrading(percent: int, seed_rig, monkeypatch) -> None:
    monkeypatch.setenv("BATM_FW_CHECKPOINT_BYTES", "4096")
    t = seed_rig(ARCHAIC, "B")
    if t.rig.kind != "sim" or not t.terminal.slots_dir:
        pytest.skip("needs the simulated rig (tc on its links, its slots directory)")
    slots = Path(t.terminal.slots_dir)
    t.server.create_terminal(t.serial, "B")
    throttle(t.rig, on=True)
    with ScreenRecorder(t.terminal.state_dir) as recorder:
        t.console.set_server(t.gate)
        shot = wait_progress(recorder, percent, 60)
        t.power.cut()  # SIGKILL mid-stream
    assert (shot["step"], shot["steps"]) == (1, 2)
    # the terminal still runs a good slot, and the journal knows where the stream was
    active = json.loads((slots / "active" / "manifest.json").read_text())
    assert active["version"] == ARCHAIC
    record = journal(slots)
    # cut mid-stream, after at least one checkpoint (16 KiB TLS records, 4 KiB checkpoints)
    assert record["state"] == "downloading" and (record.get("offset") or 0) > 0, record
    throttle(t.rig, on=False)

    t.power.on()
    t.agent.wait_for_screen("pairing_code", 90)
    status = t.agent.status()
    assert status["version"] == MIN_VERSION and status["firmware"]["upgrades"] == 2
    log = Path(t.terminal.agent_log).read_text()
    assert " 206 Partial Content" in log, "the download did not resume with a Range request"
    code = t.agent.screen()["pairing_code"]
    t.server.approve(t.serial, code)
    t.console.wait_for_screen("in_service", TIMEOUT)
    assert t.server.terminal(t.serial)["version"] == MIN_VERSION
