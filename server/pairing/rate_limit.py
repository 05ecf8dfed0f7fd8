"""Token buckets for unauthenticated requests: a burst, then a steady rate, per key.

The hello is the one request the gate must take from anybody (the terminal is not paired, so
the server knows no key of it). Buckets per source address and per serial bound what a stranger
can make the server do (issue 13, item 2). They live in the database (db/guards.py rate_buckets)
so that every server process on it spends from the same buckets: behind a load balancer a
stranger gets the same rate from two replicas as from one (issue 12). A bucket that has filled
up again is the same as no bucket, so those are swept now and then.
"""

from __future__ import annotations

import datetime
import itertools
import math
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.db.dialect import insert_unless_present
from server.db.guards import RateBucket
from server.errors import ServiceError

SWEEP_EVERY = 256  # takes between two sweeps of full buckets (per process)
_taken = itertools.count(1)


@dataclass(frozen=True)
class Rate:
    burst: int  # requests allowed at once
    per_second: float  # refill

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_second <= 0:
            raise ValueError("a rate needs a burst of at least 1 and a positive refill")

    @property
    def refill_time(self) -> datetime.timedelta:
        """How long an empty bucket takes to fill up."""
        return datetime.timedelta(seconds=self.burst / self.per_second)


class RateLimiter:
    def __init__(self, rate: Rate, kind: str, what: str):
        self.rate = rate
        self.kind = kind  # "source", "serial": keeps the kinds' keys apart in one table
        self.what = what  # "this address", "this serial": for the sentence

    def take(self, session: Session, key: str, now: datetime.datetime) -> None:
        """Spend one token of `key`'s bucket in the caller's transaction; ServiceError 429
        `rate_limited` when it is empty."""
        row_key = f"{self.kind}:{key}"
        session.execute(insert_unless_present(
            RateBucket, ["key"], key=row_key, tokens=float(self.rate.burst), at=now))
        # Locked until the transaction ends: two replicas spend one after the other.
        bucket = session.scalars(
            select(RateBucket).where(RateBucket.key == row_key)
            .with_for_update().execution_options(populate_existing=True)).one()
        elapsed = max(0.0, (now - bucket.at).total_seconds())
        tokens = min(float(self.rate.burst), bucket.tokens + elapsed * self.rate.per_second)
        if tokens < 1.0:
            wait = math.ceil((1.0 - tokens) / self.rate.per_second)
            raise ServiceError(
                429, "rate_limited",
                f"too many pairing hellos from {self.what}; try again in {wait} s")
        bucket.tokens = tokens - 1.0
        bucket.at = now
        if next(_taken) % SWEEP_EVERY == 0:
            session.execute(delete(RateBucket).where(
                RateBucket.key.startswith(f"{self.kind}:"),
                RateBucket.at < now - self.rate.refill_time))
