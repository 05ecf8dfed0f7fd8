"""The coordinator's side of the fleet's terminal processes (worker.py): start K, hand each its
share, step them through connect → load → report → close together, and add up what they say.

A worker that exits early (or says something unexpected) stops the run with a FleetError naming
it; its own stderr, shared with ours, says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys

from sim.fleet.servers import FleetError

PER_PROCESS = 15000  # terminals per process by default: well under a 20,000 open-file limit
MAX_LINE = 1 << 20


def default_processes(terminals: int) -> int:
    return max(1, math.ceil(terminals / PER_PROCESS))


def split(items: list, parts: int) -> list[list]:
    """`parts` contiguous shares of `items`, their sizes differing by at most one."""
    size, extra = divmod(len(items), parts)
    shares, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        shares.append(items[start:end])
        start = end
    return shares


class Workers:
    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    async def start(self, shares: list[list[list]], ca: str, interval: float,
                    events_every: int) -> None:
        for _share in shares:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sim.fleet.worker", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, limit=MAX_LINE)
            self.procs.append(proc)
        for proc, share in zip(self.procs, shares, strict=True):
            job = {"ca": ca, "interval": interval, "events_every": events_every,
                   "terminals": share}
            await self._send(proc, job)

    async def _send(self, proc: asyncio.subprocess.Process, message: dict) -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(message).encode() + b"\n")
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise FleetError(f"fleet worker {proc.pid} exited early (its stderr above says "
                             "why)") from None

    async def _hear(self, proc: asyncio.subprocess.Process, key: str) -> dict:
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if not line:
            code = await proc.wait()
            raise FleetError(f"fleet worker {proc.pid} exited with {code} (its stderr above "
                             "says why)")
        message = json.loads(line)
        if key not in message:
            raise FleetError(f"fleet worker {proc.pid} said {line[:200]!r}, expected {key!r}")
        return message

    async def _all(self, key: str) -> list[dict]:
        return list(await asyncio.gather(*(self._hear(proc, key) for proc in self.procs)))

    async def connected(self) -> dict:
        """Once every worker connected its share: the sums, and a few failures."""
        return _summed(await self._all("connected"))

    async def go(self, start: float, until: float) -> None:
        for proc in self.procs:
            await self._send(proc, {"go": until, "start": start})

    async def done(self) -> dict:
        """Once every worker's load ended and was acknowledged: the sums."""
        return _summed(await self._all("sent"))

    async def close(self) -> int:
        """Close every session; the events the server has not acknowledged to them."""
        for proc in self.procs:
            await self._send(proc, {"close": True})
        answers = await self._all("events_unacknowledged")
        for proc in self.procs:
            await proc.wait()
        return sum(answer["events_unacknowledged"] for answer in answers)

    async def kill(self) -> None:
        """After a failure: whatever still runs."""
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


def _summed(answers: list[dict]) -> dict:
    total: dict = {"failures": []}
    for answer in answers:
        for key, value in answer.items():
            if key == "failures":
                total["failures"] += value
            elif key == "late":  # a histogram: [bucket, count] pairs
                late = total.setdefault("late", {})
                for index, count in value:
                    late[index] = late.get(index, 0) + count
            else:
                total[key] = total.get(key, 0) + value
    total["failures"] = total["failures"][:5]
    return total
