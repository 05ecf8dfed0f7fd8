"""Requests from the display to the agent, off the UI thread.

The UI thread must never wait for the agent (an scrypt check takes ~0.2 s on a Pi; a hung agent
would freeze the screen), so requests go to a worker thread that sends one JSON line on its own
short connection to control.sock and hands the answer to `deliver(on_answer, answer)` — in the
app, a pygame event the UI thread handles. A failure becomes an answer too:
{"ok": false, "code": "unreachable", "error": sentence}.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from display.agent_link import _connect_unix

TIMEOUT = 10.0


def ask(socket_path: Path, message: dict, timeout: float = TIMEOUT) -> dict:
    """One request, one answer (blocking)."""
    try:
        sock = _connect_unix(socket_path, timeout)
    except OSError as exc:
        return {"ok": False, "code": "unreachable",
                "error": f"the terminal agent does not answer ({exc.strerror or exc})"}
    try:
        sock.settimeout(timeout)
        sock.sendall(json.dumps(message).encode() + b"\n")
        line = sock.makefile("rb").readline(1 << 20)
        answer = json.loads(line) if line else None
    except (OSError, ValueError) as exc:
        return {"ok": False, "code": "unreachable",
                "error": f"the terminal agent did not answer ({exc})"}
    finally:
        sock.close()
    if not isinstance(answer, dict):
        return {"ok": False, "code": "unreachable", "error": "the terminal agent did not answer"}
    return answer


class AgentRequester:
    def __init__(self, socket_path: Path,
                 deliver: Callable[[Callable[[dict], None], dict], None]) -> None:
        self.socket_path = Path(socket_path)
        self.deliver = deliver
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="agent-requests", daemon=True)
        self._thread.start()

    def send(self, message: dict, on_answer: Callable[[dict], None]) -> None:
        self._queue.put((message, on_answer))

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(2)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            message, on_answer = item
            self.deliver(on_answer, ask(self.socket_path, message))
