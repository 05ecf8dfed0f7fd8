"""Wake long-polls at once: approve wakes the pairing poll, unpair wakes the session poll, a
terminal's status or command result wakes the operator's waits.

The gate and the admin API run in one process and one asyncio loop, so an in-process notifier is
enough. A long-poll registers *before* it reads the state from the database and waits only
afterwards, so a notification that lands between the read and the wait is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


def pairing_topic(request_id: str) -> str:
    return f"pairing:{request_id}"


def session_topic(serial: str) -> str:
    return f"session:{serial}"


def status_topic(serial: str) -> str:
    return f"status:{serial}"


def command_topic(command_id: str) -> str:
    return f"command:{command_id}"


class Listener:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def wake(self) -> None:
        # Notifications may come from another thread (a test client, a thread pool).
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._event.set()
        else:
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> bool:
        """True when woken, False when `timeout` seconds passed first."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True


class Notifier:
    def __init__(self) -> None:
        self._listeners: dict[str, set[Listener]] = {}
        self._closed = False

    @contextlib.contextmanager
    def listen(self, topic: str) -> Iterator[Listener]:
        listener = Listener()
        if self._closed:
            listener.wake()  # shutting down: nobody should start a long wait now
        self._listeners.setdefault(topic, set()).add(listener)
        try:
            yield listener
        finally:
            listeners = self._listeners.get(topic)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._listeners[topic]

    def notify(self, topic: str) -> None:
        for listener in list(self._listeners.get(topic, ())):
            listener.wake()

    def listener_count(self, topic: str) -> int:
        """How many long-polls wait on `topic` (tests use it to know a poll is in flight)."""
        return len(self._listeners.get(topic, ()))

    def close(self) -> None:
        """Wake every waiter so that long-polls answer now and shutdown is not held up."""
        self._closed = True
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                listener.wake()
