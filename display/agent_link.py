"""The display's link to the agent: a subscriber on the control socket, in a background thread.

The display never touches the network (architecture §1); everything it shows comes from the agent
over <state-dir>/control.sock (docs/protocol.md §4).  This module keeps one subscription open:
it sends {"cmd": "subscribe"}, hands the first answer's screen and then every
{"event": "screen"} to on_screen, and reconnects whenever the agent goes away (restart, upgrade,
crash), backing off from 0.2 s to 2 s so a missing agent costs a few syscalls a second.

Callbacks run on the link's thread.  The app's callbacks only post a pygame event, which is
thread-safe, so the UI thread stays the only one that draws.

A short outage (the agent restarting into a new firmware slot) should not flash an error at
customers, so on_down is called only once the agent has been unreachable for down_grace seconds;
it is called again only after a later successful connection was lost.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batm_common.control_commands import ControlCommand
from batm_common.jsonlines import SOCKET_NAME, connect_unix, encode_line

MAX_LINE = 1 << 20  # a screen model is ~1 kB; anything near this is not the agent talking


class LinkError(Exception):
    """The agent answered, but not as the protocol says."""


class AgentLink:
    def __init__(
        self,
        socket_path: Path | str,
        on_screen: Callable[[Any], None],
        on_down: Callable[[str], None],
        *,
        min_backoff: float = 0.2,
        max_backoff: float = 2.0,
        down_grace: float = 1.0,
        connect_timeout: float = 2.0,
    ):
        self.socket_path = Path(socket_path)
        self.on_screen = on_screen
        self.on_down = on_down
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.down_grace = down_grace
        self.connect_timeout = connect_timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.connections = 0  # successful subscriptions so far (for tests and logs)

    @classmethod
    def for_state_dir(cls, state_dir: Path | str, *args, **kwargs) -> AgentLink:
        return cls(Path(state_dir) / SOCKET_NAME, *args, **kwargs)

    def start(self) -> AgentLink:
        self._thread = threading.Thread(target=self._run, name="agent-link", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with self._lock:
            if self._sock is not None:
                # shutdown() wakes a recv() blocked in the link thread; close() alone may not.
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout)

    # --- the link thread -----------------------------------------------------------------

    def _run(self) -> None:
        backoff = self.min_backoff
        unreachable_since = time.monotonic()
        reported_down = False
        while not self._stop.is_set():
            reason = self._session()
            if self._stop.is_set():
                break
            if reason is None:  # a subscription was up and then ended: start the clock anew
                unreachable_since = time.monotonic()
                reported_down = False
                backoff = self.min_backoff
                reason = "the agent closed the control connection"
            down_for = time.monotonic() - unreachable_since
            if not reported_down and down_for >= self.down_grace:
                self._call(self.on_down, reason)
                reported_down = True
            wait = backoff
            if not reported_down:
                # Wake in time to report at the end of the grace period, not a backoff later.
                wait = min(wait, max(0.0, self.down_grace - down_for))
            self._stop.wait(wait)
            backoff = min(self.max_backoff, backoff * 2)

    def _session(self) -> str | None:
        """One connection.  Returns None if a subscription was established (and later ended),
        else a sentence saying why the agent could not be reached."""
        try:
            sock = connect_unix(self.socket_path, self.connect_timeout)
            sock.settimeout(None)  # a subscription waits for the next screen as long as it takes
        except OSError as exc:
            return f"control socket {self.socket_path}: {exc.strerror or exc}"
        with self._lock:
            if self._stop.is_set():
                sock.close()
                return "stopping"
            self._sock = sock
        subscribed = False
        try:
            sock.sendall(encode_line({"cmd": ControlCommand.SUBSCRIBE}))
            reader = sock.makefile("rb")
            while not self._stop.is_set():
                line = reader.readline(MAX_LINE + 1)
                if not line:
                    break
                if len(line) > MAX_LINE:
                    raise LinkError("line from the agent is too long")
                message = self._decode(line)
                if message is None:
                    continue
                if not subscribed:
                    if message.get("ok") is not True:
                        error = message.get("error")
                        raise LinkError(f"agent refused subscribe: {error!s:.200}")
                    subscribed = True
                    self.connections += 1
                    self._call(self.on_screen, message.get("screen"))
                elif message.get("event") == "screen":
                    self._call(self.on_screen, message.get("screen"))
                # Other messages (future events) are ignored: the agent may add kinds.
        except (OSError, LinkError) as exc:
            if not subscribed:
                return str(exc) if isinstance(exc, LinkError) else f"control socket: {exc}"
        finally:
            with self._lock:
                self._sock = None
            sock.close()
        return None if subscribed else "the agent closed the connection before answering"

    @staticmethod
    def _decode(line: bytes) -> dict | None:
        try:
            message = json.loads(line)
        except ValueError:
            return None  # one garbled line must not drop a good subscription
        return message if isinstance(message, dict) else None

    @staticmethod
    def _call(callback: Callable, arg: Any) -> None:
        try:
            callback(arg)
        except Exception as exc:  # the link must outlive a UI hiccup
            print(f"batm-display: link callback failed: {exc!r}", flush=True)
