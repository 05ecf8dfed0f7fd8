"""The packaged terminal, booted with systemd as PID 1 (sim/booted): what only a real boot shows.

The tests here need a rig of kind "booted": BATM_RIG=D/rig.json from `python -m sim.booted up`,
or BATM_BOOTED=1 to bring one up per test from the newest dist/batm-terminal_*.deb (`make
hil-booted` does both). Elsewhere they skip; in CI with BATM_BOOTED=1 a missing prerequisite
fails. The rest of the suite runs on the same rig unchanged through BATM_RIG.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil_tests.conftest import _unavailable
from hil_tests.rig.drivers import BootedMachineDriver
from hil_tests.rig.resources import RigFile, load_rig
from hil_tests.rig.strategies import PairingStrategy
from hil_tests.rig.target import Target
from sim.booted.__main__ import newest_deb
from sim.booted.rig import missing_prerequisites

TIMEOUT = 30.0
AGENT = "batm-agent.service"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[RigFile]:
    existing = os.environ.get("BATM_RIG")
    if existing:
        loaded = load_rig(existing)
        if loaded.kind != "booted":
            pytest.skip(f"BATM_RIG is a {loaded.kind} rig; these tests need a booted one")
        yield loaded
        return
    if not os.environ.get("BATM_BOOTED"):
        pytest.skip("the booted-systemd rig runs with BATM_BOOTED=1 (make hil-booted)")
    missing = missing_prerequisites()
    if missing:
        _unavailable(f"booted rig needs: {', '.join(missing)}")
    deb = newest_deb()
    if deb is None:
        _unavailable("no dist/batm-terminal_*.deb (run `make packages`)")
    directory = tmp_path / "booted"
    up = subprocess.run([sys.executable, "-m", "sim.booted", "up", "--dir", str(directory),
                         "--deb", str(deb)], capture_output=True, text=True, timeout=600)
    try:
        if up.returncode != 0:
            pytest.fail(f"booted rig up failed:\n{up.stderr}{up.stdout}", pytrace=False)
        print(up.stdout)
        yield load_rig(directory / "rig.json")
    finally:
        subprocess.run([sys.executable, "-m", "sim.booted", "down", "--dir", str(directory)],
                       capture_output=True, text=True, timeout=120)


@pytest.fixture
def machine(rig: RigFile, target: Target) -> BootedMachineDriver:
    return BootedMachineDriver(rig, target.trace)


def test_the_installed_agent_runs_as_its_own_user_and_owns_its_slots(machine):
    # Issue 14: installed by a script, /var/lib/batm-slots was root's and the agent restarted
    # forever on "Permission denied" writing .boot.json.tmp-* there.
    assert machine.unit_property(AGENT, "ActiveState") == "active"
    assert machine.unit_property(AGENT, "NRestarts") == "0"
    user = machine.run("ps", "-o", "user=", "-p", str(machine.main_pid(AGENT))).stdout.strip()
    assert user == "batm-agent"
    owner = machine.run("stat", "-c", "%U:%G", "/var/lib/batm-slots").stdout.strip()
    assert owner == "batm-agent:batm"
    assert machine.run("test", "-f", "/var/lib/batm-slots/boot.json").returncode == 0
    assert machine.run("systemctl", "--failed", "--no-legend").stdout.strip() == ""


def test_pairing_survives_a_real_reboot(target, machine):
    PairingStrategy(target).transition("in_service")
    boot_seconds = machine.reboot()
    print(f"rebooted in {boot_seconds:.1f} s")
    target.console.deactivate()  # a new batm-console on the same line: switch it to JSON again
    target.console.wait_for_screen("in_service", TIMEOUT)
    assert target.agent.status()["paired"] is True
    assert target.server.terminal(target.serial)["state"] == "paired"


def test_an_error_the_agent_logs_is_an_error_in_the_journal(machine):
    machine.run("sh", "-c", "echo 'not json' > /var/lib/batm-agent/settings.json")
    machine.restart(AGENT)
    errors = machine.journal(AGENT, priority="err", since="-1min")
    assert "settings:" in errors, errors


def test_a_hung_agent_is_restarted_by_the_watchdog(machine):
    period = machine.timespan_seconds(AGENT, "WatchdogUSec")
    assert period > 0, "the agent's unit must have a watchdog (WatchdogSec)"
    hung = machine.freeze(AGENT)
    machine.wait_new_main_pid(AGENT, hung, timeout=period * 2 + 15)
    assert int(machine.unit_property(AGENT, "NRestarts")) >= 1
