"""Requests from the display to the agent, off the UI thread.

The UI thread must never wait for the agent (an scrypt check takes ~0.2 s on a Pi; a hung agent
would freeze the screen), so requests go to a worker thread that sends one JSON line on its own
short connection to control.sock and hands the answer to `deliver(on_answer, answer)` — in the
app, a pygame event the UI thread handles. A failure becomes an answer too:
{"ok": false, "code": "unreachable", "error": sentence}.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path

from batm_common.control_client import ControlClient, ControlError

TIMEOUT = 10.0


def ask(socket_path: Path, message: dict, timeout: float = TIMEOUT) -> dict:
    """One request, one answer (blocking); a failure is an answer with code "unreachable"."""
    try:
        with ControlClient(socket_path, timeout, peer="the terminal agent") as client:
            return client.request(message)
    except ControlError as exc:
        return {"ok": False, "code": "unreachable", "error": str(exc)}


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
