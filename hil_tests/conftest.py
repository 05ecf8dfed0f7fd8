"""The `rig` fixture: an existing rig from BATM_RIG=path/to/rig.json (e.g. the real Pi), or a
fresh simulated rig per test (`batm-sim up` in tmp_path, `batm-sim down` afterwards, even when
the test fails).

A failed test's report gets a "HIL step trace" section (every driver call with its timing) and
the last lines of the rig's logs.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import module_needs
import pytest

from hil_tests.rig.prereqs import (
    in_ci,
    missing_components,
    missing_prerequisites,
)
from hil_tests.rig.resources import RigFile, RigFileError, load_rig
from hil_tests.rig.seed_rig import seed_rig  # noqa: F401 (fixture: a rig at a given version)
from hil_tests.rig.target import Target
from hil_tests.rig.trace import StepTrace
from sim.prereqs import bin_dir
from sim.readiness import log_tail

UP_TIMEOUT = 90
RIG_FIXTURES = {"rig", "seed_rig", "sim_prerequisites"}
_UP_TIMES: list[float] = []


def pytest_configure(config: pytest.Config) -> None:
    module_needs.register(config)


def pytest_sessionstart(session: pytest.Session) -> None:
    """A bad BATM_RIG file stops the session before any test, naming the bad field."""
    existing = os.environ.get("BATM_RIG")
    if existing:
        try:
            load_rig(existing)
        except RigFileError as exc:
            raise pytest.UsageError(f"BATM_RIG: {exc}") from None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test here that needs a rig is marked `hil` (`pytest -m "not hil"` leaves them out).
    Only tests of this directory: tests/ has fixtures of the same names that are no rig."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and RIG_FIXTURES & set(
                getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.hil)


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"HIL prerequisite missing in CI: {reason}", pytrace=False)
    pytest.skip(f"HIL rig unavailable: {reason}")


def _batm_sim(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir() / "batm-sim"), *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def sim_prerequisites() -> None:
    """Skip (fail in CI) unless this machine can run a simulated rig."""
    problem = missing_prerequisites()
    if problem:
        _unavailable(problem)
    absent = missing_components()
    if absent:
        _unavailable(f"product command(s) not installed: {absent} (run `make venv`)")


@pytest.fixture
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RigFile]:
    existing = os.environ.get("BATM_RIG")
    if existing:
        yield load_rig(existing)
        return
    request.getfixturevalue("sim_prerequisites")
    rig_dir = tmp_path / "rig"
    started = time.monotonic()
    try:
        args = ["up", "--dir", str(rig_dir), "--scenario", "B", "--timeout", str(UP_TIMEOUT)]
        up = _batm_sim(*args, timeout=UP_TIMEOUT + 30)
        if up.returncode != 0:
            pytest.fail(f"batm-sim up failed:\n{up.stderr}{up.stdout}", pytrace=False)
        _UP_TIMES.append(time.monotonic() - started)
        yield load_rig(rig_dir / "rig.json")
    finally:
        down = _batm_sim("down", "--dir", str(rig_dir), timeout=120)
        if down.returncode != 0:
            print(f"batm-sim down failed: {down.stderr}")


@pytest.fixture
def trace() -> StepTrace:
    return StepTrace()


@pytest.fixture
def target(rig: RigFile, trace: StepTrace, request: pytest.FixtureRequest) -> Iterator[Target]:
    t = Target.for_terminal(rig, 0, trace)
    request.node._hil_target = t
    if os.environ.get("BATM_RIG"):
        t.reset()  # the rig outlives this test: start from a never-paired terminal
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def power(target: Target):
    if target.power is None:
        pytest.skip("this rig has no power control (no supervisor in rig.json)")
    return target.power


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    target: Target | None = getattr(item, "_hil_target", None)
    if target is None or not report.failed or report.when == "teardown":
        return
    report.sections.append(("HIL step trace", target.trace.format() or "(no steps)"))
    logs = [("agent", target.terminal.agent_log), ("console", target.terminal.console_log),
            ("server", target.rig.server.log)]
    for name, path in logs:
        if path:
            report.sections.append((f"{name} log (last lines)", log_tail(Path(path), 25)))


def pytest_terminal_summary(terminalreporter) -> None:
    if _UP_TIMES:
        times = sorted(_UP_TIMES)
        terminalreporter.write_line(
            f"batm-sim up: {len(times)} rig(s), median {times[len(times) // 2]:.1f}s, "
            f"max {times[-1]:.1f}s"
        )
