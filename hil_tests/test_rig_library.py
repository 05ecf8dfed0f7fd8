"""The HIL library itself, without a rig: drivers speak their protocols, the trace reads well."""

from __future__ import annotations

import pytest

from hil_tests.rig.drivers import AgentDriver, SerialConsoleDriver, ServerDriver, SimPowerDriver
from hil_tests.rig.protocols import (
    PowerProtocol,
    ServerAdminProtocol,
    ServiceProtocol,
    TerminalControlProtocol,
)
from hil_tests.rig.resources import RigFile, RigFileError
from hil_tests.rig.strategies import PairingStrategy
from hil_tests.rig.target import Target
from hil_tests.rig.trace import StepTrace, step

RIG = {
    "server": {"data_dir": "/rig/server", "netns": None, "address": "127.0.0.1"},
    "terminals": [{"serial": "T1", "version": 20230801, "state_dir": "/rig/T1/state",
                   "netns": None, "console": "/rig/T1/console"}],
    "supervisor": "/rig/sim.sock",
}


def test_drivers_implement_their_protocols() -> None:
    target = Target.for_terminal(RigFile.from_dict(RIG))
    assert isinstance(target.console, SerialConsoleDriver)
    assert isinstance(target.console, TerminalControlProtocol)
    assert isinstance(target.agent, AgentDriver)
    assert isinstance(target.agent, TerminalControlProtocol)
    assert isinstance(target.server, ServerDriver)
    assert isinstance(target.server, ServerAdminProtocol)
    assert isinstance(target.power, SimPowerDriver)
    assert isinstance(target.power, PowerProtocol)
    assert isinstance(target.power, ServiceProtocol)
    assert target.gate == "127.0.0.1:8443"
    assert "T1" in repr(target)


def test_no_supervisor_means_no_power_driver() -> None:
    rig = dict(RIG)
    del rig["supervisor"]
    assert Target.for_terminal(RigFile.from_dict(rig)).power is None


def test_bad_rig_is_refused_naming_the_field() -> None:
    bad = {**RIG, "terminals": [{**RIG["terminals"][0], "console": "ttyUSB0"}]}
    with pytest.raises(RigFileError, match=r"terminals\[0\]\.console"):
        RigFile.from_dict(bad)


def test_strategy_refuses_unknown_states() -> None:
    strategy = PairingStrategy(Target.for_terminal(RigFile.from_dict(RIG)))
    with pytest.raises(ValueError, match="in_service"):
        strategy.transition("sleeping")


class _Driver:
    def __init__(self, trace: StepTrace):
        self.trace = trace

    @step
    def outer(self, value: int) -> int:
        return self.inner(value=value) + 1

    @step
    def inner(self, value: int) -> int:
        if value < 0:
            raise ValueError("negative")
        return value * 2


def test_trace_records_nesting_timing_results_and_errors() -> None:
    trace = StepTrace()
    driver = _Driver(trace)
    assert driver.outer(2) == 5
    with pytest.raises(ValueError):
        driver.outer(-1)
    text = trace.format().splitlines()
    assert len(text) == 4
    assert "_Driver.outer(2) -> 5" in text[0]
    assert "  _Driver.inner(value=2) -> 4" in text[1]
    assert "!! ValueError: 'negative'" in text[3]
    assert all("ms" in line for line in text)
