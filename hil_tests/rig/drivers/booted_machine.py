"""BootedMachineDriver: the inside of a booted rig's terminal (systemd, journald, reboot).

Only a rig of kind "booted" (sim/booted) has one: the container is reached with nsenter, as a
technician would reach a Pi with ssh. Tests that need it skip on other rigs.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from hil_tests.rig.resources import RigFile
from hil_tests.rig.trace import StepTrace, step
from sim.booted.rig import machine_of

BOOT_TIMEOUT = 90.0


class BootedMachineDriver:
    def __init__(self, rig: RigFile, trace: StepTrace | None = None):
        if rig.kind != "booted" or not rig.logs_dir:
            raise ValueError("a BootedMachineDriver needs a rig of kind 'booted'")
        self.machine = machine_of(Path(rig.logs_dir).parent)
        self.trace = trace

    def run(self, *command: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        return self.machine.run(*command, timeout=timeout)

    def unit_property(self, unit: str, name: str) -> str:
        return self.run("systemctl", "show", "-P", name, unit).stdout.strip()

    def timespan_seconds(self, unit: str, name: str) -> float:
        """A time property ("30s", "1min 30s", "0") in seconds, as systemd-analyze reads it."""
        value = self.unit_property(unit, name)
        if value in ("", "0", "infinity"):
            return 0.0
        text = self.run("systemd-analyze", "timespan", value).stdout
        usec = next((line.split(":", 1)[1] for line in text.splitlines()
                     if line.strip().startswith("μs:")), "0")
        return int(usec.strip()) / 1e6

    def main_pid(self, unit: str) -> int:
        return int(self.unit_property(unit, "MainPID") or 0)

    def journal(self, unit: str, priority: str = "debug", since: str = "-10min") -> str:
        return self.run("journalctl", "--no-pager", "-o", "cat", "-u", unit, "-p", priority,
                        "--since", since).stdout

    @step
    def put(self, inside: str, content: bytes, mode: int = 0o644) -> None:
        """Place a file in the machine, as a technician's scp would (root's, `mode`)."""
        path = self.machine.path(inside)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)

    @step
    def reboot(self) -> float:
        """`systemctl reboot` inside; returns the seconds until systemd finished booting again."""
        old = self.machine.leader_pid()
        assert old is not None, "the machine is not running"
        self.run("systemctl", "reboot")
        return self.machine.wait_rebooted(old, BOOT_TIMEOUT)

    @step
    def restart(self, unit: str) -> None:
        self.run("systemctl", "restart", unit)

    @step
    def freeze(self, unit: str) -> int:
        """SIGSTOP the unit's main process: a hung event loop, as the watchdog sees it."""
        pid = self.main_pid(unit)
        self.run("kill", f"-{signal.SIGSTOP.value}", str(pid))
        return pid

    @step
    def wait_new_main_pid(self, unit: str, old: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.main_pid(unit)
            if pid and pid != old and self.unit_property(unit, "ActiveState") == "active":
                return pid
            time.sleep(0.5)
        raise AssertionError(f"{unit} was not restarted within {timeout:.0f} s")
