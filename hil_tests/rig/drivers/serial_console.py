"""SerialConsoleDriver: the terminal's serial console, read with pyserial, in `json on` mode.

On the simulated rig the port is the rig end of a socat pty pair; on the real rig a USB-serial
adapter. The line protocol (one JSON answer per command line) is sim.serial_json.
"""

from __future__ import annotations

from hil_tests.rig.drivers.errors import ScreenTimeout
from hil_tests.rig.resources import TerminalResource
from hil_tests.rig.trace import StepTrace, step
from sim.serial_json import ANSWER_TIMEOUT, ConsoleError, JsonConsole

__all__ = ["ConsoleError", "SerialConsoleDriver"]


class SerialConsoleDriver:
    """Implements TerminalControlProtocol over the serial line."""

    def __init__(self, terminal: TerminalResource, trace: StepTrace | None = None):
        self.terminal = terminal
        self.trace = trace
        self.console: JsonConsole | None = None

    @step
    def activate(self) -> None:
        """Open the port and switch the console to JSON mode (once)."""
        if self.console is None:
            self.console = JsonConsole(self.terminal.console)

    def deactivate(self) -> None:
        if self.console is not None:
            self.console.close()
            self.console = None

    def _ok(self, line: str) -> dict:
        if self.console is None:
            self.activate()
        assert self.console is not None
        return self.console.ok(line)

    @step
    def command(self, line: str, timeout: float = ANSWER_TIMEOUT) -> dict:
        """Any console command; returns its JSON answer as is."""
        if self.console is None:
            self.activate()
        assert self.console is not None
        return self.console.exchange(line, timeout)

    @step
    def screen(self) -> dict:
        return self._ok("screen")["screen"]

    @step
    def status(self) -> dict:
        return self._ok("status")["status"]

    @step
    def set_server(self, address: str) -> str:
        return self._ok(f"set-server {address}")["server"]

    @step
    def wait_for_screen(self, screen_id: str, timeout: float = 30.0) -> dict:
        if self.console is None:
            self.activate()
        assert self.console is not None
        answer = self.console.wait(screen_id, timeout)
        if not answer.get("ok"):
            raise ScreenTimeout(screen_id, timeout, answer.get("screen"), " (console wait)")
        return answer["screen"]
