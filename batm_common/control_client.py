"""The one blocking client of a JSON-lines socket (docs/protocol.md §4 and §5).

The agent's control socket is its main peer: the `batm-agent` CLI, the serial console, the HIL rig
and the benches use it. The rig supervisor's sim.sock speaks the same framing, so `batm-sim` uses
it too, naming its peer so the error sentences say who did not answer. The display keeps a
subscription in a thread of its own (display/agent_link.py) over the same framing.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

from batm_common.control_commands import ControlCommand
from batm_common.jsonlines import connect_unix, encode_line, socket_path


class ControlError(Exception):
    """Talking to the agent failed; str() is a sentence for a person."""


class AgentUnreachable(ControlError):
    """Nobody listens on the socket (not running, restarting, or no permission)."""


class ConnectionLost(ControlError):
    """The agent closed the connection (it stopped or restarted)."""


class ControlTimeout(ControlError):
    """The agent did not answer in time."""


class AgentError(ControlError):
    """The peer answered {"ok": false}; str() is its error sentence."""

    def __init__(self, answer: dict[str, Any], peer: str = "the agent") -> None:
        super().__init__(str(answer.get("error") or f"{peer} refused the request"))
        self.answer = answer


class ControlClient:
    """A blocking connection to the agent's control socket (or another JSON-lines socket).

    `target` is a state directory or the socket path itself. `timeout` bounds connecting and each
    request (None: wait forever). `peer` names who listens there, for the error sentences.
    """

    MAX_ANSWER = 4 * 1024 * 1024

    def __init__(self, target: str | os.PathLike[str], timeout: float | None = 5.0,
                 peer: str = "the agent") -> None:
        self.path = socket_path(target)
        self.timeout = timeout
        self.peer = peer
        self._buffer = bytearray()
        self._sock = self._connect()

    @classmethod
    def connect(
        cls, target: str | os.PathLike[str], timeout: float | None = 5.0, peer: str = "the agent"
    ) -> ControlClient:
        return cls(target, timeout, peer)

    def _connect(self) -> socket.socket:
        try:
            return connect_unix(self.path, self.timeout)
        except (FileNotFoundError, NotADirectoryError):
            raise AgentUnreachable(
                f"{self.peer} is not running (no control socket at {self.path})"
            ) from None
        except ConnectionRefusedError:
            raise AgentUnreachable(
                f"{self.peer} is not running (nothing listens on {self.path})"
            ) from None
        except PermissionError:
            raise AgentUnreachable(
                f"no permission to use the control socket {self.path} "
                f"(run as root or as a member of {self.peer}'s group)"
            ) from None
        except TimeoutError:
            raise AgentUnreachable(
                f"{self.peer} did not accept a connection on {self.path}"
            ) from None
        except OSError as exc:
            raise AgentUnreachable(f"cannot connect to {self.peer} at {self.path}: {exc}") from None

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return the agent's answer (which may say "ok": false)."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        self._send(message)
        return self._read_message(deadline)

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Like request(), but an {"ok": false} answer raises AgentError."""
        return self.checked(self.request({"cmd": cmd, **fields}))

    def checked(self, answer: dict[str, Any]) -> dict[str, Any]:
        if answer.get("ok") is not True:
            raise AgentError(answer, self.peer)
        return answer

    def screens(
        self, deadline: float | None = None, first_deadline: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Subscribe and yield screen models: the current one, then every change.

        `deadline` is a time.monotonic() value after which ControlTimeout is raised;
        `first_deadline` (default: `deadline`) bounds the wait for the first, current screen. The
        connection is the subscription's from then on: do not call request() on it again.
        """
        self._send({"cmd": ControlCommand.SUBSCRIBE})
        first = self._read_message(deadline if first_deadline is None else first_deadline)
        self.checked(first)
        yield self._screen_of(first)
        while True:
            event = self._read_message(deadline)
            if event.get("event") == "screen":
                yield self._screen_of(event)

    def _screen_of(self, message: dict[str, Any]) -> dict[str, Any]:
        screen = message.get("screen")
        if not isinstance(screen, dict):
            raise ControlError(f"{self.peer} sent a screen that is not a JSON object")
        return screen

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self._sock.sendall(encode_line(message))
        except OSError as exc:
            raise ConnectionLost(f"{self.peer} closed the connection ({exc.strerror})") from None

    def _read_message(self, deadline: float | None) -> dict[str, Any]:
        line = self._read_line(deadline)
        try:
            message = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ControlError(f"{self.peer} sent an answer that is not JSON") from None
        if not isinstance(message, dict):
            raise ControlError(f"{self.peer} sent an answer that is not a JSON object")
        return message

    def _read_line(self, deadline: float | None) -> bytes:
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                return line
            if len(self._buffer) > self.MAX_ANSWER:
                raise ControlError(f"{self.peer} sent an answer longer than 4 MiB")
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ControlTimeout(f"{self.peer} did not answer in time")
                self._sock.settimeout(remaining)
            else:
                self._sock.settimeout(None)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise ControlTimeout(f"{self.peer} did not answer in time") from None
            except OSError as exc:
                raise ConnectionLost(
                    f"{self.peer} closed the connection ({exc.strerror})") from None
            if not chunk:
                raise ConnectionLost(f"{self.peer} closed the connection")
            self._buffer += chunk


def call(target: str | os.PathLike[str], request: dict[str, Any], timeout: float | None = 10.0,
         peer: str = "the agent") -> dict[str, Any]:
    """One request on a fresh connection; an {"ok": false} answer raises AgentError."""
    with ControlClient(target, timeout, peer) as client:
        return client.checked(client.request(request))


def answers(target: str | os.PathLike[str], timeout: float = 0.5) -> bool:
    """True when the socket accepts a connection and answers a ping."""
    try:
        call(target, {"cmd": "ping"}, timeout)
    except ControlError:
        return False
    return True


class WaitTimeout(ControlError):
    """wait_for_screen() gave up; `last_screen` is the last model seen (or None)."""

    def __init__(self, message: str, last_screen: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.last_screen = last_screen


def wait_for_screen(
    target: str | os.PathLike[str], screen_id: str, timeout: float
) -> dict[str, Any]:
    """Block until the agent shows `screen_id`; return that screen model.

    Watches the subscription (no polling). If the agent is down or restarts, reconnects until the
    timeout, since a restart is exactly when an upgrade's next screen appears. Raises WaitTimeout.
    """
    deadline = time.monotonic() + timeout
    last_screen: dict[str, Any] | None = None
    problem: str | None = None
    backoff = 0.05
    attempts = 0
    while True:
        now = time.monotonic()
        if attempts and now >= deadline:
            break
        attempts += 1
        # The first look always gets time for one answer, so a zero timeout means "showing now?".
        first_deadline = max(deadline, now + 2.0) if attempts == 1 else deadline
        try:
            with ControlClient(target, timeout=min(max(deadline - now, 0.5), 5.0)) as client:
                backoff = 0.05
                problem = None
                for screen in client.screens(deadline, first_deadline):
                    last_screen = screen
                    if screen.get("screen") == screen_id:
                        return screen
        except (AgentUnreachable, ConnectionLost) as exc:
            problem = str(exc)
        except ControlTimeout:
            break
        # Reconnecting, not polling the screen: the agent is (re)starting.
        time.sleep(max(0.0, min(backoff, deadline - time.monotonic())))
        backoff = min(backoff * 2, 0.5)
    message = f"timed out after {timeout:g} s waiting for screen {screen_id!r}"
    if last_screen is not None:
        message += f"; the last screen seen was {last_screen.get('screen')!r}"
        if problem is not None:
            message += f", then {problem}"
    else:
        message += f"; {problem}" if problem is not None else "; no screen was seen"
    raise WaitTimeout(message, last_screen)
