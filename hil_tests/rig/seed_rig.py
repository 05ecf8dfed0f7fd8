"""The `seed_rig` fixture: a fresh simulated rig whose one terminal runs a given version, in a
given scenario (or BATM_RIG's terminal when its version class and scenario fit), for the seed
matrix and the upgrade tests. Scenario A is skipped until the rig provides a VPN.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hil_tests.rig.prereqs import in_ci
from hil_tests.rig.resources import RigFile, load_rig
from hil_tests.rig.target import Target
from hil_tests.rig.trace import StepTrace
from sim.prereqs import bin_dir

UP_TIMEOUT = 90
MIN_VERSION = 20230801
CLASSES = {"current": (20230801, 0), "old": (20210601, 1), "archaic": (20190130, 2)}
_VPN: dict[str, bool] = {}  # scenario A: did `batm-sim up --scenario A` provide a VPN?
NO_VPN = ("the simulated rig provided no VPN for scenario A (is wireguard-go installed? "
          "`apt-get install wireguard-go`)")


def require_vpn() -> None:
    """A scenario-A rig without a VPN is a missing prerequisite: skip outside CI, fail in CI."""
    if _VPN.get("A") is False:
        if in_ci():
            pytest.fail(NO_VPN, pytrace=False)
        pytest.skip(NO_VPN)


def version_class(version: int) -> str:
    if version >= MIN_VERSION:
        return "current"
    return "old" if version > 20190130 else "archaic"


def provides_vpn(rig_json: Path) -> bool:
    """The VPN issue adds a "vpn" object to rig.json (top level or server) when the rig has one."""
    data = json.loads(rig_json.read_text())
    left_out = data.get("left_out") or []
    return bool(data.get("vpn") or data.get("server", {}).get("vpn")) and "vpn" not in left_out


@pytest.fixture
def seed_rig(tmp_path: Path, request: pytest.FixtureRequest,
             trace: StepTrace) -> Iterator[Callable[[int, str], Target]]:
    """up(version, scenario) → the Target of a fresh rig (or of BATM_RIG's terminal)."""
    rig_dirs: list[Path] = []

    def up(version: int, scenario: str) -> Target:
        existing = os.environ.get("BATM_RIG")
        if existing:
            rig: RigFile = load_rig(existing)
            if rig.scenario and rig.scenario != scenario:
                pytest.skip(f"BATM_RIG is a scenario {rig.scenario} rig")
            if version_class(rig.terminals[0].version) != version_class(version):
                pytest.skip(f"BATM_RIG's terminal runs {rig.terminals[0].version}")
            target = Target.for_terminal(rig, 0, trace)
            target.reset()
        else:
            request.getfixturevalue("sim_prerequisites")
            rig_dir = tmp_path / f"rig{len(rig_dirs)}"
            rig_dirs.append(rig_dir)
            done = batm_sim("up", "--dir", str(rig_dir), "--scenario", scenario, "--versions",
                             str(version), "--no-display", "--timeout", str(UP_TIMEOUT),
                             timeout=UP_TIMEOUT + 30)
            if done.returncode != 0:
                pytest.fail(f"batm-sim up failed:\n{done.stderr}{done.stdout}", pytrace=False)
            target = Target.for_terminal(load_rig(rig_dir / "rig.json"), 0, trace)
        request.node._hil_target = target
        if scenario == "A":
            _VPN["A"] = provides_vpn(Path(existing) if existing else rig_dir / "rig.json")
            require_vpn()
        return target

    yield up
    for rig_dir in rig_dirs:
        batm_sim("down", "--dir", str(rig_dir), timeout=120)



def batm_sim(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir() / "batm-sim"), *args], capture_output=True, text=True,
                          timeout=timeout)
