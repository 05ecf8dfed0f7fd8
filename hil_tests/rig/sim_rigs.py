"""The simulated rigs of one pytest process (one xdist worker): shared ones and fresh ones.

A shared rig (one per scenario; B with a display window) serves every test that can start from
a reset terminal: before each test but its first, the terminal is brought back to "never paired"
with the rig's own operations (Target.reset: server started, terminal deleted on the server,
terminal wiped by the supervisor), as on the real rig, which is always shared. A rig whose test
failed is taken down and the next test gets a new one, so a failure cannot leak into later tests.

A fresh rig is brought up for one test and taken down after it (in the background) where a reset
cannot give the test what it needs: a terminal at an old version, whose upgrades change its
firmware slots for good; and tests marked `fresh_rig`, whose state the rig's operations cannot
undo (the kiosk's administration pages stay open on the display; the server keeps a deleted
terminal's events, which some tests count).

Rigs are isolated by directory (sim/naming.py hashes every namespace and link name from it), so
the workers' rigs run side by side.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hil_tests.rig.resources import RigFile, load_rig
from hil_tests.rig.target import Target
from hil_tests.rig.trace import StepTrace
from sim.layout import DEFAULT_VERSION
from sim.prereqs import bin_dir

UP_TIMEOUT = 90
DOWN_TIMEOUT = 120
SHARED_DISPLAY = {"A": False, "B": True}  # the kiosk tests run in B; nothing in A needs a window
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()  # filled by hil_tests/conftest.py


def batm_sim(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir() / "batm-sim"), *args], capture_output=True, text=True,
                          timeout=timeout)


@dataclass
class SimRig:
    dir: Path
    rig: RigFile
    shared: bool
    tests_served: int = 0


@dataclass
class SimRigs:
    base: Path
    up_times: list[float] = field(default_factory=list)
    _shared: dict[str, SimRig] = field(default_factory=dict)
    _going_down: list[threading.Thread] = field(default_factory=list)
    _count: int = 0

    def up(self, scenario: str, *, version: int | None = None, display: bool = False,
           shared: bool = False, database: str | None = None, replicas: int = 1) -> SimRig:
        self._count += 1
        rig_dir = self.base / f"{scenario}{self._count}"
        args = ["up", "--dir", str(rig_dir), "--scenario", scenario, "--timeout", str(UP_TIMEOUT)]
        if version is not None:
            args += ["--versions", str(version)]
        if not display:
            args.append("--no-display")
        if database is not None:
            args += ["--database", database, "--replicas", str(replicas)]
        started = time.monotonic()
        done = batm_sim(*args, timeout=UP_TIMEOUT + 30)
        if done.returncode != 0:
            batm_sim("down", "--dir", str(rig_dir), timeout=DOWN_TIMEOUT)
            pytest.fail(f"batm-sim up failed:\n{done.stderr}{done.stdout}", pytrace=False)
        self.up_times.append(time.monotonic() - started)
        return SimRig(rig_dir, load_rig(rig_dir / "rig.json"), shared)

    def shared(self, scenario: str) -> SimRig:
        """This process's rig for `scenario`, brought up on first use."""
        if scenario not in self._shared:
            self._shared[scenario] = self.up(scenario, display=SHARED_DISPLAY[scenario],
                                             shared=True)
        return self._shared[scenario]

    def release(self, rig: SimRig, *, failed: bool) -> None:
        """After a test: a fresh rig goes down; a shared one too if its test failed. Down runs
        in the background (a few seconds of stopping processes), so the next test can start."""
        rig.tests_served += 1
        if rig.shared and not failed:
            return
        if self._shared.get(rig.rig.scenario or "") is rig:
            del self._shared[rig.rig.scenario or ""]
        going = threading.Thread(target=self.down, args=(rig,), name=f"down {rig.dir.name}")
        going.start()
        self._going_down.append(going)

    @staticmethod
    def down(rig: SimRig) -> None:
        done = batm_sim("down", "--dir", str(rig.dir), timeout=DOWN_TIMEOUT)
        if done.returncode != 0:
            print(f"batm-sim down --dir {rig.dir} failed: {done.stderr}")

    def close(self) -> None:
        for rig in list(self._shared.values()):
            self.down(rig)
        self._shared.clear()
        for going in self._going_down:
            going.join()


def test_failed(item: pytest.Item) -> bool:
    return any(report.failed for report in item.stash.get(REPORTS, {}).values())


@contextlib.contextmanager
def leased(request: pytest.FixtureRequest, rig: SimRig) -> Iterator[SimRig]:
    """Hold a simulated rig for one test; give it back (or take it down) afterwards."""
    try:
        yield rig
    finally:
        request.getfixturevalue("sim_rigs").release(rig, failed=test_failed(request.node))


@contextlib.contextmanager
def rig_target(request: pytest.FixtureRequest, trace: StepTrace, scenario: str | None = None,
               version: int | None = None) -> Iterator[Target]:
    """Terminal 0 of the rig this test runs on, as a never-paired terminal:

    - BATM_RIG's rig (skipped when it is not a `scenario` rig), reset first, since it outlives
      every test;
    - else this process's shared simulated rig for `scenario` (B when None), reset first if it
      served a test before;
    - else a fresh simulated rig, taken down after the test, for a test marked `fresh_rig` or a
      terminal at another version than the shared rigs' (the test will upgrade it); it has a
      display window only when the mark says `fresh_rig(display=True)`, and its server runs
      on PostgreSQL, with N replicas, when it says `fresh_rig(database="postgresql",
      replicas=N)` (sim/replicas.py).
    """
    existing = os.environ.get("BATM_RIG")
    if existing:
        rig = load_rig(existing)
        if scenario and rig.scenario and rig.scenario != scenario:
            pytest.skip(f"BATM_RIG is a scenario {rig.scenario} rig; this test needs {scenario}")
        with _held_target(request, rig, trace, reset=True) as target:
            yield target
        return
    request.getfixturevalue("sim_prerequisites")
    rigs: SimRigs = request.getfixturevalue("sim_rigs")
    scenario = scenario or "B"
    fresh = request.node.get_closest_marker("fresh_rig")
    if fresh or version not in (None, DEFAULT_VERSION):
        options = fresh.kwargs if fresh else {}
        sim_rig = rigs.up(scenario, version=version, display=bool(options.get("display")),
                          database=options.get("database"),
                          replicas=options.get("replicas", 1))
    else:
        sim_rig = rigs.shared(scenario)
    with leased(request, sim_rig), _held_target(request, sim_rig.rig, trace,
                                                 reset=sim_rig.tests_served > 0) as target:
        yield target


@contextlib.contextmanager
def _held_target(request: pytest.FixtureRequest, rig: RigFile, trace: StepTrace,
                 reset: bool) -> Iterator[Target]:
    target = Target.for_terminal(rig, 0, trace)
    request.node._hil_target = target  # its trace and logs go into a failure's report
    if reset:
        target.reset()
    try:
        yield target
    finally:
        target.close()

