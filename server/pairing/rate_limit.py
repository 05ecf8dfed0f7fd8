"""Token buckets for unauthenticated requests: a burst, then a steady rate, per key.

The hello is the one request the gate must take from anybody (the terminal is not paired, so
the server knows no key of it). Buckets per source address and per serial bound what a stranger
can make the server do (issue 13, item 2). They live in this process's memory: each server
process limits on its own, and a restart forgets them — a bound on abuse, not an accounting.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from server.errors import ServiceError

MAX_KEYS = 10_000  # buckets kept; the fullest (least recently refilled) go first beyond it


@dataclass(frozen=True)
class Rate:
    burst: int  # requests allowed at once
    per_second: float  # refill

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_second <= 0:
            raise ValueError("a rate needs a burst of at least 1 and a positive refill")


class RateLimiter:
    def __init__(self, rate: Rate, what: str, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.what = what  # "this address", "this serial": for the sentence
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        """Spend one token of `key`'s bucket; ServiceError 429 `rate_limited` when empty."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (float(self.rate.burst), now))
            tokens = min(float(self.rate.burst), tokens + (now - at) * self.rate.per_second)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate.per_second)
                raise ServiceError(
                    429, "rate_limited",
                    f"too many pairing hellos from {self.what}; try again in {wait} s")
            self._buckets[key] = (tokens - 1.0, now)  # re-inserted last: most recent
            while len(self._buckets) > MAX_KEYS:
                del self._buckets[next(iter(self._buckets))]
