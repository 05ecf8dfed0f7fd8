"""The screen model the agent shows, and everyone who watches it.

The daemon publishes a screen model (a plain dict, see docs/protocol.md §4) whenever what the
terminal should show changes; the display, the serial console and `batm-agent wait` subscribe to it
through the control socket. The bus lives inside the daemon's asyncio loop: publish() is a plain
call from loop code, subscribers are async iterators.

A subscriber that does not keep up must not hold anyone else back, and must not make the daemon's
memory grow: each one has a small bounded queue, and when it is full the oldest queued model is
dropped. A slow watcher therefore skips intermediate screens but always ends on the newest one,
which is what a screen needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

# Fields the bus owns: they change with every publish, so they do not count as a change.
BUS_FIELDS = ("seq", "changed_at")
DEFAULT_QUEUE_SIZE = 16


def _content(model: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in model.items() if key not in BUS_FIELDS}


class ScreenBus:
    """Holds the current screen model and fans out every change to subscribers."""

    def __init__(
        self,
        initial: dict[str, Any] | None = None,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._queue_size = queue_size
        self._clock = clock
        self._current: dict[str, Any] | None = None
        self._seq = 0
        self._subscriptions: set[Subscription] = set()
        if initial is not None:
            self.publish(initial)

    @property
    def current(self) -> dict[str, Any] | None:
        """A copy of the current model (with "seq" and "changed_at"), or None before the first."""
        return dict(self._current) if self._current is not None else None

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def publish(self, model: dict[str, Any]) -> bool:
        """Make `model` the current screen. Returns False (and does nothing) if it is unchanged.

        "seq" and "changed_at" in `model` are ignored: the bus assigns them.
        """
        if not isinstance(model, dict):
            raise TypeError(f"a screen model is a dict, not {type(model).__name__}")
        content = _content(model)
        if self._current is not None and _content(self._current) == content:
            return False
        self._seq += 1
        stored = {**content, "seq": self._seq, "changed_at": self._clock()}
        self._current = stored
        for subscription in list(self._subscriptions):
            subscription._offer(stored)
        return True

    def subscribe(self) -> Subscription:
        """An async iterator of models: the current one first (as soon as there is one), then
        every change in order. Close it (or use `async with`) when done watching."""
        subscription = Subscription(self, self._queue_size)
        self._subscriptions.add(subscription)
        if self._current is not None:
            subscription._offer(self._current)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)


class Subscription:
    """One watcher's view of a ScreenBus. Yields copies, so a consumer cannot alter the bus."""

    def __init__(self, bus: ScreenBus, queue_size: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        self._closed = False
        self.dropped = 0  # models skipped because this subscriber was too slow

    def _offer(self, model: dict[str, Any]) -> None:
        if self._closed:
            return
        if self._queue.full():
            self._queue.get_nowait()  # drop the oldest; the newest must always get through
            self.dropped += 1
        self._queue.put_nowait(model)

    def close(self) -> None:
        self._closed = True
        self._bus._unsubscribe(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._closed:
            raise StopAsyncIteration
        model = await self._queue.get()
        return dict(model)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
