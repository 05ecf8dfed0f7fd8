"""Replay protection for signed requests (issue 13, item 8).

A signed request used to be replayable for as long as its timestamp was in the ±300 s window.
Terminals now sign a random nonce with every request (batm_common.signing, v2), so no two
genuine requests share a signature; the server remembers every signature it accepted until its
timestamp leaves the window and refuses one it has seen. (A v1 request without a nonce is
caught the same way: Ed25519 signatures are deterministic.) The memory is this process's: with
several server processes, each refuses the replays it sees.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from batm_common.signing import MAX_CLOCK_SKEW

MAX_REMEMBERED = 200_000  # signatures (~30 MB at most); beyond, the oldest are forgotten


class ReplayGuard:
    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._seen: dict[str, float] = {}  # signature → when it may be forgotten
        self._lock = threading.Lock()

    def first_use(self, signature: str, timestamp: int) -> bool:
        """True the first time `signature` is presented; False for a replay."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            if signature in self._seen:
                return False
            # Remembered until its timestamp is out of the window for good.
            self._seen[signature] = max(now, timestamp) + MAX_CLOCK_SKEW + 1
            while len(self._seen) > MAX_REMEMBERED:
                del self._seen[next(iter(self._seen))]
            return True

    def _expire(self, now: float) -> None:
        # Insertion order ≈ expiry order (same window for all): drop from the front.
        for signature, until in list(self._seen.items())[:1000]:
            if until > now:
                break
            del self._seen[signature]
