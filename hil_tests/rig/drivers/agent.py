"""AgentDriver: the terminal through the `batm-agent` CLI and its --state-dir."""

from __future__ import annotations

import json
import subprocess
import time

from hil_tests.rig.drivers.errors import CommandFailed, ScreenTimeout
from hil_tests.rig.resources import TerminalResource
from hil_tests.rig.trace import StepTrace, step
from sim.prereqs import component_command


class AgentDriver:
    """Implements TerminalControlProtocol."""

    def __init__(self, terminal: TerminalResource, trace: StepTrace | None = None):
        self.terminal = terminal
        self.trace = trace

    def run(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        command = [component_command("batm-agent"), *args, "--state-dir", self.terminal.state_dir]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)

    def _json(self, *args: str) -> dict:
        proc = self.run(*args)
        if proc.returncode != 0:
            raise CommandFailed(proc)
        return json.loads(proc.stdout)

    @step
    def screen(self) -> dict:
        return self._json("screen", "--json")

    @step
    def status(self) -> dict:
        return self._json("status", "--json")

    @step
    def wait_outbox_empty(self, timeout: float = 30.0) -> dict:
        """The terminal's master status once every event it recorded is acknowledged by the
        server, or the last one seen at `timeout`. Its own view: the server's is the
        terminal's last status report, which can predate acknowledgements a killed broker lost
        (the terminal then sends those events again, and waits for their acknowledgements)."""
        deadline = time.monotonic() + timeout
        while True:
            master = self._json("status", "--json")["master"]
            if master["outbox_pending"] == 0 or time.monotonic() > deadline:
                return master
            time.sleep(0.1)

    @step
    def set_server(self, address: str) -> str:
        proc = self.run("set-server", address)
        if proc.returncode != 0:
            raise CommandFailed(proc)
        return proc.stdout.strip()

    @step
    def wait_for_screen(self, screen_id: str, timeout: float = 30.0) -> dict:
        proc = self.run("wait", screen_id, "--timeout", f"{timeout:g}", "--json",
                        timeout=timeout + 15)
        if proc.returncode != 0:
            try:
                last = self._json("screen", "--json")
            except (CommandFailed, ValueError):
                last = None
            raise ScreenTimeout(screen_id, timeout, last, " (batm-agent wait)")
        return json.loads(proc.stdout)
