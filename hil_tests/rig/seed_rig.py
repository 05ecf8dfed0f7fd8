"""The `seed_rig` fixture: a terminal at a given version, in a given scenario, never paired.

A current terminal (20230801) is terminal 0 of the process's shared rig for that scenario, reset
first (hil_tests/rig/sim_rigs.py); an old or archaic one gets a fresh rig, since its upgrades
change its firmware slots for good. With BATM_RIG it is that rig's terminal when its version class
and scenario fit. A scenario-A rig without a VPN fails in CI and skips elsewhere.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import pytest

from hil_tests.rig.prereqs import in_ci
from hil_tests.rig.resources import RigFile, load_rig
from hil_tests.rig.sim_rigs import rig_target
from hil_tests.rig.target import Target
from hil_tests.rig.trace import StepTrace

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


def provides_vpn(rig: RigFile) -> bool:
    return bool(rig.server.vpn) and "vpn" not in rig.left_out


@pytest.fixture
def seed_rig(request: pytest.FixtureRequest,
             trace: StepTrace) -> Iterator[Callable[[int, str], Target]]:
    """up(version, scenario) → the Target of a never-paired terminal at that version."""
    with contextlib.ExitStack() as held:

        def up(version: int, scenario: str) -> Target:
            existing = os.environ.get("BATM_RIG")
            if existing:
                running = load_rig(existing).terminals[0].version
                if version_class(running) != version_class(version):
                    pytest.skip(f"BATM_RIG's terminal runs {running}")
            target = held.enter_context(rig_target(request, trace, scenario, version))
            if scenario == "A":
                _VPN["A"] = provides_vpn(target.rig)
                require_vpn()
            return target

        yield up
