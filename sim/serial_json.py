"""The serial console's JSON mode from the rig side: one command line out, one JSON line back.

`batm-console` answers exactly one JSON line per command line after `json on` (agent/console.py).
Anything else on the line — the banner, echoes from before JSON mode, a late answer to a command
that timed out — is skipped. The HIL SerialConsoleDriver and the demo both use this.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import serial

BAUD = 115200
ANSWER_TIMEOUT = 10.0


class ConsoleError(AssertionError):
    """The console answered nothing usable in time; says what it did send."""


class JsonConsole:
    def __init__(self, port: str, baud: int = BAUD):
        self.port_name = port
        self.serial = serial.Serial(port, baud, timeout=0.2, write_timeout=5)
        self.serial.reset_input_buffer()
        # A CR first ends whatever half line an earlier user left behind.
        answer = self.exchange("\r\njson on", want=lambda a: "json" in a)
        if answer.get("json") is not True:
            raise ConsoleError(f"the console on {port} did not switch to JSON mode: {answer!r}")

    def close(self) -> None:
        self.serial.close()

    def exchange(self, line: str, timeout: float = ANSWER_TIMEOUT,
                 want: Callable[[dict], bool] = lambda answer: True) -> dict:
        self.serial.reset_input_buffer()
        self.serial.write(line.encode() + b"\r\n")
        deadline = time.monotonic() + timeout
        skipped: list[bytes] = []
        while time.monotonic() < deadline:
            raw = self.serial.readline()
            if not raw:
                continue
            try:
                answer = json.loads(raw)
            except ValueError:
                skipped.append(raw)
                continue
            if isinstance(answer, dict) and want(answer):
                return answer
            skipped.append(raw)
        raise ConsoleError(
            f"no JSON answer to {line.strip()!r} on {self.port_name} within {timeout:g}s"
            f" (other output: {b''.join(skipped[-5:])!r})"
        )

    def ok(self, line: str, timeout: float = ANSWER_TIMEOUT) -> dict:
        answer = self.exchange(line, timeout)
        if not answer.get("ok"):
            raise ConsoleError(f"console {line!r}: {answer.get('error') or answer!r}")
        return answer

    def wait(self, screen_id: str, timeout: float) -> dict:
        """{"ok": true, "screen": …} or {"ok": false, "error": …, "screen": last screen}."""
        return self.exchange(f"wait {screen_id} {timeout:g}", timeout + ANSWER_TIMEOUT)
