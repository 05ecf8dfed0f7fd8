"""ServerDriver: the operator's side, through the `batm-server` CLI and --data-dir.

The CLI reaches the running server through data_dir/admin.sock, so the server's network
namespace does not matter here.
"""

from __future__ import annotations

import json
import subprocess
import time

from hil_tests.rig.drivers.errors import CommandFailed
from hil_tests.rig.resources import ServerResource
from hil_tests.rig.trace import StepTrace, step
from sim.prereqs import component_command

POLL = 0.1


class ServerDriver:
    """Implements ServerAdminProtocol."""

    def __init__(self, server: ServerResource, trace: StepTrace | None = None):
        self.server = server
        self.trace = trace

    def run(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        return self.run_with_input(None, *args, timeout=timeout)

    def run_with_input(self, stdin: str | None, *args: str,
                       timeout: float = 30.0) -> subprocess.CompletedProcess:
        command = [component_command("batm-server"), *args, "--data-dir", self.server.data_dir]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              input=stdin)

    def _checked(self, *args: str) -> subprocess.CompletedProcess:
        proc = self.run(*args)
        if proc.returncode != 0:
            raise CommandFailed(proc)
        return proc

    @staticmethod
    def _parsed(proc: subprocess.CompletedProcess):
        try:
            return json.loads(proc.stdout)
        except ValueError:
            return proc.stdout.strip()

    @step
    def create_terminal(self, serial: str, scenario: str = "B", location: str | None = None):
        args = ["terminal", "create", serial, "--scenario", scenario]
        if location:
            args += ["--location", location]
        return self._parsed(self._checked(*args))

    @step
    def generate_vpn(self, serial: str) -> dict:
        """The guide's "Generate VPN configuration" (scenario A)."""
        return json.loads(self._checked("terminal", "vpn", serial, "--json").stdout)

    @step
    def terminals(self) -> list[dict]:
        return json.loads(self._checked("terminal", "list", "--json").stdout)

    @step
    def terminal(self, serial: str) -> dict | None:
        found = [t for t in json.loads(self._checked("terminal", "list", "--json").stdout)
                 if t.get("serial") == serial]
        return found[0] if found else None

    @step
    def pairing_requests(self) -> list[dict]:
        return json.loads(self._checked("pairing", "list", "--json").stdout)

    def _request_of(self, serial: str) -> dict | None:
        requests = json.loads(self._checked("pairing", "list", "--json").stdout)
        mine = [r for r in requests if r.get("serial") == serial]
        return mine[-1] if mine else None

    @step
    def wait_for_pairing_request(
        self, serial: str, timeout: float = 30.0, *, with_code: bool = True,
        not_request: str | None = None,
    ) -> dict:
        """The open request of `serial` (with its code revealed, unless with_code=False); skip
        `not_request` (an earlier request id) to wait for a new one."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self._request_of(serial)
            ready = last is not None and (last.get("code") or not with_code)
            if ready and last.get("request_id") != not_request:
                return last
            time.sleep(POLL)
        raise AssertionError(
            f"no {'new ' if not_request else ''}pairing request of {serial} with a code within "
            f"{timeout:g}s; last seen: {last!r}"
        )

    @step
    def approve(self, serial: str, code: str) -> object:
        return self._parsed(self._checked("pairing", "approve", serial, "--code", code))

    @step
    def try_approve(self, serial: str, code: str) -> subprocess.CompletedProcess:
        """Approve without insisting: the caller checks the exit status and message."""
        return self.run("pairing", "approve", serial, "--code", code)

    @step
    def delete_terminal(self, serial: str) -> object:
        return self._parsed(self._checked("terminal", "delete", serial))

    @step
    def unpair(self, serial: str) -> object:
        return self._parsed(self._checked("terminal", "unpair", serial))
