"""SimPowerDriver: power and service faults through the simulator's supervisor (sim.sock)."""

from __future__ import annotations

from batm_common.control_client import call
from hil_tests.rig.trace import StepTrace, step
from sim.layout import SUPERVISOR

ACTION_TIMEOUT = 90.0


class SimPowerDriver:
    """Implements PowerProtocol (one terminal) and ServiceProtocol (the server)."""

    def __init__(self, supervisor: str, serial: str, trace: StepTrace | None = None):
        self.supervisor = supervisor
        self.serial = serial
        self.trace = trace

    def _terminal(self, action: str, **extra: object) -> None:
        self._ask({"cmd": "terminal", "serial": self.serial, "action": action, **extra})

    def _ask(self, request: dict) -> None:
        call(self.supervisor, request, timeout=ACTION_TIMEOUT, peer=SUPERVISOR)

    @step
    def off(self) -> None:
        self._terminal("stop")

    @step
    def on(self) -> None:
        self._terminal("start")

    @step
    def cycle(self) -> None:
        self._terminal("restart")

    @step
    def cycle_with_clock_offset(self, seconds: int) -> None:
        """Restart with the agent's wall clock shifted (`batm-sim terminal restart
        --clock-offset`, libfaketime): a Pi without RTC booting with a wrong calendar."""
        self._terminal("restart", clock_offset=seconds)

    @step
    def cut(self) -> None:
        """SIGKILL: a power cut, nothing gets to clean up."""
        self._terminal("kill")

    @step
    def wipe(self) -> None:
        """Stop the agent, delete its state (keys, credentials), start it again."""
        self._terminal("wipe")

    @step
    def stop_server(self) -> None:
        self._ask({"cmd": "server", "action": "stop"})

    @step
    def start_server(self) -> None:
        self._ask({"cmd": "server", "action": "start"})
