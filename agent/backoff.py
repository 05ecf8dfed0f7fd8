"""Capped, jittered exponential backoff, so a fleet does not reconnect in lockstep."""

from __future__ import annotations

import random


def retry_delay(
    attempt: int, cap: float, base: float = 0.5, rng: random.Random | None = None
) -> float:
    """Delay before retry `attempt` (1-based): uniform in [base/2, min(cap, base·2^(n-1))]."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    low = min(base / 2, ceiling)
    return (rng or random).uniform(low, ceiling)
