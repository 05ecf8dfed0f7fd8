"""One process of the fleet's terminals: `python -m sim.fleet.worker`, started by workers.py.

A process holds one socket per terminal and its open-file limit is per process (20,000 hard in
some sandboxes), so `batm-sim fleet --processes K` splits the terminals over K of these. Each
runs the same asyncio terminals (terminal.py) on its own event loop and speaks JSON lines with
the coordinator — stdin in, stdout out:

  ← {"ca": PATH, "interval": S, "events_every": E,
     "terminals": [[serial, password, broker, source address], …]}
  → {"connected": n, "failed": count, "failures": [the first few, as sentences]}
  ← {"go": UNTIL, "start": START}
                        the load's start and end on time.monotonic() (CLOCK_MONOTONIC: one
                        clock for every process of the machine, so no offsets to agree on)
  → {"published": p, "sent": s, "events_sent": e, "alive": a, "failed": count,
     "failures": […]}   when every terminal stopped and the broker acknowledged what it took
                        (or acknowledged nothing more for ACK_SETTLE seconds); alive: the
                        sessions the broker has not cut

Before the load and after it, the terminals ping (terminal.keep_alive): the first of a large
share connect minutes before the load starts.
  ← {"close": true}     after the coordinator saw the server store it all
  → {"events_unacknowledged": u}, then exit

Nothing else goes to stdout; errors go to stderr, which the coordinator shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time

from sim.fleet.mqtt import client_tls
from sim.fleet.provision import SimTerminal
from sim.fleet.terminal import Counts, FleetTerminal, keep_alive

CONNECT_CONCURRENCY = 200  # TLS handshakes at a time, per process
ACK_SETTLE = 5.0  # seconds without a new PUBACK after the load before reporting anyway
FD_MARGIN = 512  # descriptors beyond one per terminal: the loop, pipes, the CA file
MAX_LINE = 1 << 28  # the job line: ≈ 120 bytes a terminal


def fd_limit_for(terminals: int) -> int:
    """Raise the soft open-file limit for `terminals` sockets; what it is now."""
    wanted = terminals + FD_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _say(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _stdin() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def _order(reader: asyncio.StreamReader, key: str) -> dict:
    line = await reader.readline()
    if not line:
        raise SystemExit(0)  # the coordinator is gone: nothing to report to
    message = json.loads(line)
    if key not in message:
        raise SystemExit(f"fleet worker: expected {key!r}, got {sorted(message)}")
    return message


async def _connect(terminals: list[tuple[FleetTerminal, str]], tls, counts: Counts) -> None:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(terminal: FleetTerminal, local_host: str) -> None:
        async with gate:
            try:
                await terminal.connect(tls, local_host)
            except Exception as exc:
                counts.failed.append(f"{terminal.serial}: connect: {exc}")

    await asyncio.gather(*(one(t, local) for t, local in terminals))


async def _acknowledged(counts: Counts, live: list[FleetTerminal]) -> None:
    """Until the broker acknowledged every publish, or stopped acknowledging."""
    for terminal in live:
        await terminal.connection.drain()  # type: ignore[union-attr]
    last, still = -1, time.monotonic()
    while counts.sent < counts.published and time.monotonic() - still < ACK_SETTLE:
        if counts.sent != last:
            last, still = counts.sent, time.monotonic()
        await asyncio.sleep(0.1)


async def work() -> None:
    reader = await _stdin()
    job = await _order(reader, "terminals")
    fd_limit_for(len(job["terminals"]))
    counts = Counts()
    tls = client_tls(job["ca"])
    terminals = [
        (FleetTerminal(SimTerminal(serial, "", password, True, broker), counts,
                       job["interval"], job["events_every"]), local_host)
        for serial, password, broker, local_host in job["terminals"]]
    everyone = [t for t, _local in terminals]
    pings = asyncio.create_task(keep_alive(everyone))  # the first wait longest for the load
    await _connect(terminals, tls, counts)
    _say({"connected": counts.connected, "failed": len(counts.failed),
          "failures": counts.failed[:5]})
    live = [t for t in everyone if t.connection is not None]
    go = await _order(reader, "go")
    start, until = go["start"], go["go"]
    pings.cancel()
    await asyncio.gather(*(t.run(start, until) for t in live))
    pings = asyncio.create_task(keep_alive(live))
    await _acknowledged(counts, live)
    _say({"published": counts.published, "sent": counts.sent,
          "events_sent": counts.events_sent, "alive": sum(t.alive for t in live),
          "late": sorted(counts.late.items()),
          "failed": len(counts.failed), "failures": counts.failed[:5]})
    await _order(reader, "close")
    pings.cancel()
    unacknowledged = sum(t.events_unacknowledged for t in live)
    await asyncio.gather(*(t.close() for t in everyone))
    _say({"events_unacknowledged": unacknowledged})


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(work())
