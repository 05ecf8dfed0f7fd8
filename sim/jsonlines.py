"""JSON-lines over a Unix socket: the agent's control socket and the rig supervisor's sim.sock.

One object per line each way (docs/protocol.md §4 and §5). Small and synchronous on purpose: the
demo, the benchmark and the HIL drivers all use it.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path


class ControlError(RuntimeError):
    """The socket is not there, closed early, or answered {"ok": false}."""


class JsonLineClient:
    def __init__(self, path: Path | str, timeout: float = 10.0):
        self.path = str(path)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> JsonLineClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot connect to {self.path}: {exc.strerror or exc}") from exc
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, request: dict) -> None:
        assert self.sock is not None, "connect() first"
        self.sock.sendall(json.dumps(request).encode() + b"\n")

    def read(self, timeout: float | None = None) -> dict:
        assert self.sock is not None, "connect() first"
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        while b"\n" not in self._buffer:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError as exc:
                raise ControlError(f"no answer from {self.path} in time") from exc
            if not chunk:
                raise ControlError(f"{self.path} closed the connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            answer = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ControlError(f"{self.path} answered non-JSON: {line!r}") from exc
        if not isinstance(answer, dict):
            raise ControlError(f"{self.path} answered {answer!r}, not an object")
        return answer

    def request(self, request: dict, timeout: float | None = None) -> dict:
        self.send(request)
        answer = self.read(timeout)
        if answer.get("ok") is False:
            raise ControlError(answer.get("error") or f"{request.get('cmd')} failed")
        return answer


def call(path: Path | str, request: dict, timeout: float = 10.0) -> dict:
    """One request on a fresh connection."""
    with JsonLineClient(path, timeout) as client:
        return client.request(request, timeout)


def answers(path: Path | str, timeout: float = 0.5) -> bool:
    """True when the socket accepts a connection and answers a ping."""
    try:
        call(path, {"cmd": "ping"}, timeout)
    except (ControlError, OSError):
        return False
    return True


def screen_events(path: Path | str, timeout: float = 30.0) -> Iterator[tuple[float, dict]]:
    """Subscribe to the agent's screen: yields (monotonic receive time, screen) for the current
    screen, then for every change. Stops with ControlError after `timeout` s of silence."""
    with JsonLineClient(path, timeout) as client:
        first = client.request({"cmd": "subscribe"}, timeout)
        yield time.monotonic(), first["screen"]
        while True:
            event = client.read(timeout)
            if event.get("event") == "screen":
                yield time.monotonic(), event["screen"]
