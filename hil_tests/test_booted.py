"""The packaged terminal, booted with systemd as PID 1 (sim/booted): what only a real boot shows.

Each test gets a booted rig of its own (a boot takes seconds: the rootfs layers are cached,
sim/booted/rootfs.py), from the batm-terminal package of this clone, built once per test run
for every xdist worker (scripts/build-packages: the dependencies' wheels are cached too). The
shared suite's tests that apply to a terminal without power control run unchanged on a booted
rig through BATM_RIG (test_the_shared_pairing_tests_pass_on_a_booted_rig).

With BATM_RIG naming a booted rig (`python -m sim.booted up`), the tests run on it instead.
Outside CI a missing prerequisite skips with what to install; with CI=true it fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil_tests.conftest import _unavailable, record_up_time
from hil_tests.rig.drivers import BootedMachineDriver
from hil_tests.rig.resources import load_rig
from hil_tests.rig.strategies import PairingStrategy
from hil_tests.rig.target import Target
from hil_tests.rig.trace import StepTrace
from sim.booted import rig as booted_rig
from sim.prereqs import bin_dir

pytestmark = pytest.mark.hil
REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 30.0
AGENT = "batm-agent.service"
# What scripts/build-packages needs beside the rig's own prerequisites: tool → Debian package.
BUILD_PREREQUISITES = {"dpkg-deb": "dpkg", "fakeroot": "fakeroot", "flock": "util-linux"}
# The shared suite's tests that apply to a booted terminal (no power control, no display):
# pairing, a wrong code, an unknown serial, unpair.
SHARED = ("hil_tests/test_pairing.py", "-k", "never_paired_terminal_pairs or unpair_sends or "
          "wrong_code or unknown_serial")


def _prerequisites() -> None:
    missing = booted_rig.missing_prerequisites()
    missing += [pkg for tool, pkg in BUILD_PREREQUISITES.items() if shutil.which(tool) is None]
    if subprocess.run(["/usr/bin/python3", "-c", "import ensurepip"],
                      capture_output=True).returncode:
        missing.append("python3-venv")
    if missing:
        _unavailable(f"the booted-systemd rig needs: {', '.join(dict.fromkeys(missing))} "
                     f"(apt-get install, or `make system-deps`)")


def _run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory all xdist workers of this run share (one package build per run)."""
    base = tmp_path_factory.getbasetemp()
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    return base.parent / f"booted-{run}" if run else base / "booted"


@pytest.fixture(scope="session")
def booted_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/batm-terminal_*.deb of this clone's code, built once per test run."""
    _prerequisites()
    out = _run_dir(tmp_path_factory)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        debs = sorted(out.glob("batm-terminal_*.deb"))
        if not debs:
            done = subprocess.run([str(REPO / "scripts" / "build-packages"), "--out", str(out),
                                   "--only", "batm-terminal", "--compress", "none"],
                                  capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                pytest.fail(f"scripts/build-packages failed:\n{done.stderr[-3000:]}",
                            pytrace=False)
            debs = sorted(out.glob("batm-terminal_*.deb"))
    return debs[-1]


@contextlib.contextmanager
def _booted_rig(request: pytest.FixtureRequest, deb: Path, directory: Path,
                trace: StepTrace) -> Iterator[Target]:
    existing = os.environ.get("BATM_RIG")
    if existing:
        rig = load_rig(existing)
        if rig.kind != "booted":
            pytest.skip(f"BATM_RIG is a {rig.kind} rig; these tests need a booted one")
        target = Target.for_terminal(rig, 0, trace)
        target.reset()
    else:
        try:
            timings = booted_rig.up(directory, deb)
        except booted_rig.BootedRigError as exc:
            pytest.fail(f"the booted rig did not come up: {exc}", pytrace=False)
        record_up_time("booted rig boot (nspawn, to systemd running)", timings.boot_seconds)
        record_up_time("booted rig layers (cached or built)", timings.rootfs_seconds)
        target = Target.for_terminal(load_rig(directory / "rig.json"), 0, trace)
    request.node._hil_target = target  # its trace and logs go into a failure's report
    try:
        yield target
    finally:
        target.close()
        if not existing:
            left = booted_rig.down(directory)
            assert not left, f"the booted rig left behind: {left}"


@pytest.fixture
def booted(request: pytest.FixtureRequest, short_tmp_path: Path,
           trace: StepTrace) -> Iterator[Target]:
    """Terminal 0 of a booted rig of this test's own, never paired."""
    deb = None if os.environ.get("BATM_RIG") else request.getfixturevalue("booted_deb")
    with _booted_rig(request, deb, short_tmp_path / "b", trace) as target:
        yield target


@pytest.fixture
def machine(booted: Target) -> BootedMachineDriver:
    return BootedMachineDriver(booted.rig, booted.trace)


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


def test_pairing_survives_a_real_reboot(booted, machine):
    PairingStrategy(booted).transition("in_service")
    record_up_time("booted rig reboot", machine.reboot())
    booted.console.deactivate()  # a new batm-console on the same line: switch it to JSON again
    booted.console.wait_for_screen("in_service", TIMEOUT)
    assert booted.agent.status()["paired"] is True
    assert booted.server.terminal(booted.serial)["state"] == "paired"


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


def _firmware(*args: str) -> None:
    done = subprocess.run([str(bin_dir() / "batm-firmware"), *args], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, f"batm-firmware {' '.join(args)}: {done.stderr}"


def test_an_upgrade_restarts_the_agent_into_the_new_slot(booted, machine, tmp_path):
    """The operator's path: a signing key trusted by the server and by the terminal's image, a
    signed bundle in the catalog, its version required to pair; the gate asks for it at the
    hello, the agent installs it into slot b as its own user and exits 75, and systemd
    (Restart=always) starts it again on the new slot."""
    installed = json.loads(machine.run("cat", "/var/lib/batm-slots/active/manifest.json").stdout)
    new_version = installed["version"] + 10000  # a year on: 20230801 → 20240801
    key = tmp_path / "release.key"
    _firmware("keygen", str(key))
    public = key.with_name("release.key.pub")
    server_keys = Path(booted.rig.server.data_dir) / "firmware-keys"
    server_keys.mkdir(exist_ok=True)
    shutil.copyfile(public, server_keys / public.name)
    machine.put("/etc/batm/firmware-keys/release.key.pub", public.read_bytes())
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "VERSION").write_text(f"{new_version}\n")
    bundle = tmp_path / f"{new_version}.fw"
    _firmware("build", str(payload), "--version", str(new_version), "--hardware",
              installed["hardware"], "--install-from", f"{installed['version']}-", "--out",
              str(bundle))
    _firmware("sign", str(bundle), "--key", str(key))
    booted.server.run("firmware", "add", str(bundle)).check_returncode()
    # Terminals below it must upgrade before they pair: the gate answers upgrade_required.
    booted.server.run("firmware", "policy", "--min-pair-version",
                      str(new_version)).check_returncode()
    before = machine.main_pid(AGENT)

    PairingStrategy(booted).transition("created")
    booted.console.set_server(booted.gate)
    booted.console.wait_for_screen("pairing_code", 90)  # after "upgrading" and the restart

    assert machine.main_pid(AGENT) != before
    assert int(machine.unit_property(AGENT, "NRestarts")) >= 1  # systemd started it again
    assert "restarting into the new slot" in machine.journal(AGENT, since="-5min")
    status = booted.agent.status()
    assert status["version"] == new_version and status["firmware"]["upgrades"] == 1, status
    assert machine.run("readlink", "/var/lib/batm-slots/active").stdout.strip() == "b"
    owner = machine.run("stat", "-c", "%U", "/var/lib/batm-slots/b/VERSION").stdout.strip()
    assert owner == "batm-agent"
    code = booted.agent.screen()["pairing_code"]
    booted.server.approve(booted.serial, code)
    booted.console.wait_for_screen("in_service", TIMEOUT)
    assert booted.server.terminal(booted.serial)["version"] == new_version


def test_the_shared_pairing_tests_pass_on_a_booted_rig(booted):
    """The shared suite's tests, unchanged, with BATM_RIG naming this booted rig."""
    if os.environ.get("BATM_RIG"):
        pytest.skip("BATM_RIG is set: run the shared tests against it directly")
    rig_file = Path(booted.rig.logs_dir or "").parent / "rig.json"
    env = {**os.environ, "BATM_RIG": str(rig_file)}
    env.pop("PYTEST_XDIST_WORKER", None)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *SHARED], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, f"{summary}\n{done.stdout[-6000:]}{done.stderr[-2000:]}"
    assert re.fullmatch(r"4 passed.*", summary.strip("= ")), summary  # nothing skipped
