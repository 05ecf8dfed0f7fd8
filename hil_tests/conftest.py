"""The rig fixtures, for the simulated rig and the real one alike (only the rig file differs):

  rig        BATM_RIG=path/to/rig.json (e.g. the real Pi), or this process's shared simulated
             scenario-B rig with a display, or for a test marked fresh_rig a simulated rig of its
             own (hil_tests/rig/sim_rigs.py)
  target     terminal 0 of `rig`, reset to "never paired" first whenever the rig served a test
             before (the real rig, or a shared simulated one)
  seed_rig   a rig at a given version and scenario (hil_tests/rig/seed_rig.py)
  sim_rigs   the simulated rigs of this process: shared per scenario, fresh on request; a rig
             whose test failed is replaced, so a failure does not leak into later tests
  short_tmp_path  a directory short enough for a rig's Unix sockets (under pytest-xdist too)

A failed test's report gets a "HIL step trace" section (every driver call with its timing) and
the last lines of the rig's logs. The terminal summary says how long `batm-sim up` took.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import module_needs
import pytest

from hil_tests.rig.drivers import BootedMachineDriver
from hil_tests.rig.prereqs import (
    in_ci,
    missing_components,
    missing_prerequisites,
)
from hil_tests.rig.resources import RigFile, RigFileError, load_rig
from hil_tests.rig.seed_rig import seed_rig  # noqa: F401 (fixture: a rig at a given version)
from hil_tests.rig.sim_rigs import REPORTS, SimRigs, rig_target
from hil_tests.rig.target import Target
from hil_tests.rig.trace import StepTrace
from sim.readiness import log_tail

RIG_FIXTURES = {"rig", "seed_rig", "sim_rigs", "sim_prerequisites"}
UP_TIMES = "batm-rig-up-times"  # forwarded from xdist workers to the controller's summary
_UP_TIMES: dict[str, list[float]] = {}  # "batm-sim up", "booted rig boot", … → seconds


def record_up_time(what: str, seconds: float) -> None:
    """A rig's start-up time, for the terminal summary (median and max per `what`)."""
    _UP_TIMES.setdefault(what, []).append(seconds)


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


@pytest.fixture
def sim_prerequisites() -> None:
    """Skip (fail in CI) unless this machine can run a simulated rig."""
    problem = missing_prerequisites()
    if problem:
        _unavailable(problem)
    absent = missing_components()
    if absent:
        _unavailable(f"product command(s) not installed: {absent} (run `make venv`)")


@pytest.fixture(scope="session")
def sim_rigs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimRigs]:
    rigs = SimRigs(tmp_path_factory.mktemp("rigs"))
    try:
        yield rigs
    finally:
        rigs.close()
        for seconds in rigs.up_times:
            record_up_time("batm-sim up", seconds)


@pytest.fixture
def rig(request: pytest.FixtureRequest, trace: StepTrace) -> Iterator[RigFile]:
    with rig_target(request, trace) as target:  # also makes `target`
        yield target.rig


@pytest.fixture
def short_tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary directory for a rig: a Unix socket path must fit in 107 bytes, and tmp_path,
    named after the test (and the xdist worker), can leave a rig's sockets too little room."""
    return tmp_path_factory.mktemp("rig")


@pytest.fixture
def trace() -> StepTrace:
    return StepTrace()


@pytest.fixture
def target(rig: RigFile, request: pytest.FixtureRequest) -> Target:
    """Terminal 0 of `rig`, never paired (`rig` made it and reset it where needed)."""
    return request.node._hil_target


@pytest.fixture
def power(target: Target):
    if target.power is None:
        pytest.skip("this rig has no power control (no supervisor in rig.json)")
    return target.power


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    item.stash.setdefault(REPORTS, {})[report.when] = report
    target: Target | None = getattr(item, "_hil_target", None)
    if target is None or not report.failed or report.when == "teardown":
        return
    report.sections.append(("HIL step trace", target.trace.format() or "(no steps)"))
    logs = [("agent", target.terminal.agent_log), ("console", target.terminal.console_log),
            ("server", target.rig.server.log)]
    for name, path in logs:
        if path:
            report.sections.append((f"{name} log (last lines)", log_tail(Path(path), 25)))
    if target.rig.kind == "booted":  # its logs are in its journal, inside the machine
        report.sections.append(("booted terminal's journal (last lines)", _booted_journal(target)))


def _booted_journal(target: Target) -> str:
    try:
        return BootedMachineDriver(target.rig).run(
            "journalctl", "--no-pager", "-n", "40", "-o", "short-monotonic").stdout
    except Exception as exc:  # a report must not fail for want of a journal
        return f"(no journal: {exc})"


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller prints the summary
        workeroutput[UP_TIMES] = {what: list(times) for what, times in _UP_TIMES.items()}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    for what, times in ((getattr(node, "workeroutput", None) or {}).get(UP_TIMES) or {}).items():
        for seconds in times:
            record_up_time(what, seconds)


def pytest_terminal_summary(terminalreporter) -> None:
    for what, times in sorted(_UP_TIMES.items()):
        times = sorted(times)
        terminalreporter.write_line(
            f"{what}: {len(times)} rig(s), median {times[len(times) // 2]:.1f}s, "
            f"max {times[-1]:.1f}s"
        )
