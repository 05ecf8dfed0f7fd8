"""The fleet's figures: a process's CPU and memory from /proc, percentiles, the ingest lag.

CPU is in percent of one core over a window (two readings of utime + stime); RSS is the
resident set at the window's end (VmRSS).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

from server.master.ingest_stats import percentile_from_buckets

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuReading:
    pid: int
    cpu_seconds: float
    at: float


def cpu_reading(pid: int) -> CpuReading:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # after "pid (comm)": state is field 3, utime 14 and stime 15 (1-based) of the full line
    return CpuReading(pid, (int(fields[11]) + int(fields[12])) / TICKS, time.monotonic())


def tree_cpu_reading(pid: int) -> CpuReading:
    """A process with its children, those running and those gone (PostgreSQL's backends come
    and go): its own CPU, its waited-for children's (cutime + cstime), its living children's."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                child = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile: its time is in the parent's cutime now
        if int(child[1]) == pid:
            ticks += int(child[11]) + int(child[12])
    return CpuReading(pid, ticks / TICKS, time.monotonic())


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its living children (shared pages counted in each)."""
    total = rss_mb(pid)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        total += rss_mb(int(entry.name))
            except OSError:
                continue
    return round(total, 1)


def cpu_percent(before: CpuReading, after: CpuReading) -> float:
    wall = after.at - before.at
    return round(100.0 * (after.cpu_seconds - before.cpu_seconds) / wall, 1) if wall > 0 else 0.0


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def lag_delta(before: dict, after: dict) -> dict[int, int]:
    """The status-lag histogram of what was stored between two ingest snapshots."""
    old = dict((int(i), int(n)) for i, n in before.get("status_lag_buckets", []))
    new = dict((int(i), int(n)) for i, n in after.get("status_lag_buckets", []))
    return {i: n - old.get(i, 0) for i, n in new.items() if n - old.get(i, 0) > 0}


def lag_percentile(buckets: dict[int, int], fraction: float) -> float | None:
    value = percentile_from_buckets(buckets, fraction)
    return round(value, 1) if value is not None else None


def merge_buckets(histograms: list[dict[int, int]]) -> dict[int, int]:
    """One histogram of several (the replicas' lags): percentiles over all the samples."""
    merged: dict[int, int] = {}
    for histogram in histograms:
        for index, count in histogram.items():
            merged[index] = merged.get(index, 0) + count
    return merged
