"""What the ingestion did since the server started: counts, CPU per message, status lag.

The operator's (and the fleet simulator's) view of ingestion, read through the admin API
(`GET /api/v1/master/ingest`): messages stored per kind, refused, batches, the ingest worker's
CPU time (the database side of a message; the MQTT client's own cost is measured in
bench/mqtt_clients.py), and the lag of each stored status — its commit time minus the `at` the
terminal stamped it with — as a histogram. Buckets grow by 10 %, so a percentile read from two
snapshots' difference is within 10 %; the lag includes the terminal's clock error, which is
nothing for the simulator (same machine) and small for NTP-synchronised terminals.
"""

from __future__ import annotations

import datetime
import math
import threading

LAG_BASE_MS = 1.0
LAG_GROWTH = 1.1
LAG_BUCKETS = 150  # up to ≈ 1.6 × 10^6 ms; later lags go into the last bucket


def lag_bucket(lag_ms: float) -> int:
    if lag_ms <= LAG_BASE_MS:
        return 0
    return min(LAG_BUCKETS - 1, math.ceil(math.log(lag_ms / LAG_BASE_MS, LAG_GROWTH)))


def bucket_upper_ms(index: int) -> float:
    return LAG_BASE_MS * LAG_GROWTH ** index


def parse_at(text: object) -> float | None:
    """The POSIX time of a status's `at` (ISO 8601, UTC); None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def percentile_from_buckets(buckets: dict[int, int], fraction: float) -> float | None:
    """The upper bound (ms) of the bucket holding that fraction of the counts; None if empty."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    rank = fraction * total
    seen = 0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= rank:
            return bucket_upper_ms(index)
    return bucket_upper_ms(max(buckets))


class IngestStats:
    """Thread-safe counters; the ingest worker records, the admin API reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stored: dict[str, int] = {}
        self._refused = 0
        self._batches = 0
        self._cpu = 0.0
        self._lag: dict[int, int] = {}

    def record(self, stored: dict[str, int], refused: int, cpu_seconds: float,
               status_at: list[float], committed_at: float) -> None:
        with self._lock:
            for kind, count in stored.items():
                self._stored[kind] = self._stored.get(kind, 0) + count
            self._refused += refused
            self._batches += 1
            self._cpu += cpu_seconds
            for at in status_at:
                index = lag_bucket(max(0.0, committed_at - at) * 1000)
                self._lag[index] = self._lag.get(index, 0) + 1

    def snapshot(self) -> dict:
        with self._lock:
            messages = sum(self._stored.values())
            return {
                "stored": dict(self._stored),
                "messages": messages,
                "refused": self._refused,
                "batches": self._batches,
                "cpu_seconds": round(self._cpu, 6),
                "cpu_us_per_message": round(self._cpu / messages * 1e6, 1) if messages else None,
                # [bucket index, count]; a bucket's upper bound is 1.1^index ms
                "status_lag_buckets": sorted(self._lag.items()),
            }
