"""The server's CPU per stored status message, on SQLite or PostgreSQL, at a fixed rate (issue 12).

    PYTHONPATH=. .venv/bin/python bench/ingest_cost.py [--database sqlite|postgresql]
        [--terminals 50000] [--rate 5000] [--duration 30] [--events-every 0]
        [--profile FILE] [--dir D]

A real `batm-server run` (its own Mosquitto, its database: the data dir's SQLite file, or a
throw-away durable PostgreSQL from Debian's package, sim/postgres.py) with N terminals enrolled
through the admin API. One cheap publisher — the simulator's asyncio MQTT client
(sim/fleet/mqtt.py) on the broker's loopback listener with the server's broker account, which
may publish on every terminal's topics — sends the terminals' retained QoS 1 statuses (the
fleet simulator's payload) round-robin at --rate messages per second: N terminals at N / rate
seconds each, without N TLS connections. That isolates what the fleet run mixes up: the server
process's own cost per message (MQTT client, hand-over, checks, database), not the broker's TLS
or the load generator's.

Every terminal has a status row before the window (a warm-up of N / rate seconds, + 3 s), so
the window measures the steady state: an UPDATE of the latest status per message, no history
row (the compared fields do not change). Figures: the server process's CPU time (every thread:
/proc/PID/stat) over the window divided by the statuses it stored in that window (its ingest
counters, GET /api/v1/master/ingest) = CPU-µs per stored message, the ingest worker's own share
(its thread time), the server's idle CPU before the load, the status lag p50/p95, and whether
everything published was stored. CPU time, not wall time: other work on the machine does not
inflate it (only the lag, which is wall-clock).

--profile FILE: py-spy (pip install py-spy into the venv; not a project dependency) samples the
server during the window; FILE gets the collapsed stacks, and the top functions by own and by
inclusive samples are printed. Sampling pauses the server, so take figures from a run without it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from batm_common.clock import iso_ms, utcnow
from server.master.broker import ADMIN_SECRET_FILE, BROKER_DIR, CONF_FILE
from server.master.dynsec import ADMIN_USER  # may publish on every terminal topic
from sim.fleet import measure
from sim.fleet.mqtt import MqttConnection
from sim.fleet.provision import admin_client, enroll, new_terminal
from sim.fleet.servers import POSTGRESQL, SQLITE, FleetServers, ServerProcess
from sim.fleet.worker import fd_limit_for

PUBLISHER_ID = "batm-bench-publisher"
TICK = 0.01  # seconds between two bursts of the publisher
DRAIN_TIMEOUT = 60.0


def broker_account(data_dir: Path) -> tuple[int, str]:
    """The loopback listener's port and the server's broker password (master/broker.py)."""
    broker = data_dir / BROKER_DIR
    conf = (broker / CONF_FILE).read_text()
    port = int(re.search(r"^listener (\d+) 127\.0\.0\.1$", conf, re.M).group(1))
    return port, (broker / ADMIN_SECRET_FILE).read_text().strip()


def status_payload(serial: str, started: float) -> bytes:
    """What a simulated terminal publishes (sim/fleet/terminal.py)."""
    return json.dumps({
        "online": True, "serial": serial, "version": 20240101, "slot": "a",
        "state": "in_service", "screen": "in_service", "last_update": None,
        "last_sync": None, "last_sync_error": None,
        "uptime": round(time.monotonic() - started, 1), "vpn_handshake_age": None,
        "outbox_pending": 0, "at": iso_ms(utcnow()),
    }).encode()


class Publisher:
    def __init__(self, serials: list[str], rate: float, events_every: int):
        self.serials = serials
        self.rate = rate
        self.events_every = events_every
        self.sent = 0  # statuses and events published
        self.statuses = 0
        self.acked = 0
        self.connection: MqttConnection | None = None
        self._started = time.monotonic()
        self._next = 0

    async def connect(self, port: int, password: str) -> None:
        self.connection = MqttConnection(on_puback=self._on_puback)
        await self.connection.connect("127.0.0.1", port, None, PUBLISHER_ID, ADMIN_USER,
                                      password, clean=True)

    def _on_puback(self, _packet_id: int) -> None:
        self.acked += 1

    def _one(self) -> None:
        assert self.connection is not None
        serial = self.serials[self._next % len(self.serials)]
        self._next += 1
        if self.events_every and self._next % self.events_every == 0:
            event = {"id": f"bench-{self._next}", "type": "bench", "at": iso_ms(utcnow()),
                     "data": {"n": self._next}}
            self.connection.publish(f"terminals/{serial}/events", json.dumps(event).encode())
        else:
            self.connection.publish(f"terminals/{serial}/status",
                                    status_payload(serial, self._started), retain=True)
            self.statuses += 1
        self.sent += 1

    async def run(self, seconds: float) -> None:
        """Publish at the rate for `seconds` (bursts every TICK, catching up after a late one)."""
        assert self.connection is not None
        loop = asyncio.get_running_loop()
        begin = loop.time()
        done = 0
        while (now := loop.time()) < begin + seconds:
            due = int((now - begin) * self.rate)
            while done < due:
                self._one()
                done += 1
            await self.connection.drain()
            await asyncio.sleep(TICK)


async def wait_stored(admin, target: int) -> dict:
    """The ingest counters once `target` messages are stored (or progress stops)."""
    last, still = -1, time.monotonic()
    while True:
        now = (await admin.get("/api/v1/master/ingest")).json()
        if now["messages"] >= target:
            return now
        if now["messages"] != last:
            last, still = now["messages"], time.monotonic()
        elif time.monotonic() - still > DRAIN_TIMEOUT:
            return now
        await asyncio.sleep(0.1)


def start_profiler(pid: int, output: Path, seconds: float) -> subprocess.Popen:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("--profile needs py-spy in the venv: .venv/bin/pip install py-spy")
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--output",
                             str(output), "--duration", str(int(seconds)), "--rate", "200"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# Leaves where a thread waits rather than works: py-spy's idle detection misses them here.
IDLE_LEAVES = ("Condition.wait (threading.py)", "EpollSelector.select (selectors.py)",
               "_worker (concurrent/futures/thread.py)", "Client._loop (paho/mqtt/client.py)",
               "IngestConnection._session (server/master/ingest_client.py)",  # recv_into
               "Connection.notifies (psycopg/connection.py)")  # the wake-up listener


def summarize_profile(path: Path, top: int = 25) -> str:
    """Own and inclusive samples per function from py-spy's collapsed stacks, waits left out
    (a blocked select() or lock counts as the Python frame that called it)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        frames = [re.sub(r"\(.*/(site-packages|python3\.\d+|wt-[^/]+)/", "(", f)
                  for f in frames]
        if frames[-1] in IDLE_LEAVES:
            idle += samples
            continue
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    lines = [f"profile: {total} busy samples at 200/s ({idle} waiting ones left out)",
             "  own:"]
    lines += [f"    {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["  inclusive:"]
    lines += [f"    {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)


def database_pids(database) -> list[int]:
    """PostgreSQL's postmaster and its children (backends, WAL writer, autovacuum…)."""
    if database is None:
        return []
    with contextlib.suppress(OSError, ValueError, IndexError):
        postmaster = int((database.data / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        return [postmaster, *map(int, children)]
    return []


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += measure.cpu_reading(pid).cpu_seconds
    return total


async def measure_server(args: argparse.Namespace, server: ServerProcess,
                         database=None) -> dict:
    pid = server.info["pid"]
    terminals = [new_terminal(i) for i in range(args.terminals)]
    async with admin_client(Path(server.info["admin_socket"])) as admin:
        started = time.monotonic()
        await enroll(admin, terminals)
        say(f"enrolled {len(terminals)} terminals in {time.monotonic() - started:.1f} s")
        idle_before = measure.cpu_reading(pid)
        await asyncio.sleep(3)
        idle = measure.cpu_percent(idle_before, measure.cpu_reading(pid))
        port, password = broker_account(server.data_dir)
        publisher = Publisher([t.serial for t in terminals], args.rate, args.events_every)
        await publisher.connect(port, password)
        warm_up = args.terminals / args.rate + 3
        say(f"warm-up {warm_up:.0f} s (every terminal's first status makes its row)")
        await publisher.run(warm_up)
        before = await wait_stored(admin, publisher.sent)
        sent_before, statuses_before = publisher.sent, publisher.statuses
        profiler = (start_profiler(pid, args.profile, args.duration)
                    if args.profile else None)
        cpu_before = measure.cpu_reading(pid)
        db_pids = database_pids(database)  # backends that end meanwhile are not counted
        db_before = cpu_of(db_pids)
        await publisher.run(args.duration)
        published = time.monotonic()
        after = await wait_stored(admin, publisher.sent)
        drain = time.monotonic() - published
        cpu_after = measure.cpu_reading(pid)
        db_cpu = cpu_of(db_pids) - db_before
        if profiler is not None:
            profiler.wait(args.duration + 30)
        await publisher.connection.close()  # type: ignore[union-attr]
    sent = publisher.sent - sent_before
    stored = after["messages"] - before["messages"]
    statuses = after["stored"].get("status", 0) - before["stored"].get("status", 0)
    cpu = cpu_after.cpu_seconds - cpu_before.cpu_seconds
    ingest_cpu = after["cpu_seconds"] - before["cpu_seconds"]
    lags = measure.lag_delta(before, after)
    return {
        "database": args.database,
        "terminals": args.terminals,
        "rate": args.rate,
        "sent": sent,
        "statuses_sent": publisher.statuses - statuses_before,
        "stored": stored,
        "refused": after["refused"] - before["refused"],
        "batches": after["batches"] - before["batches"],
        "server_cpu_s": round(cpu, 3),
        "server_cpu_us_per_message": round(cpu / stored * 1e6, 1) if stored else None,
        "server_cpu_us_per_status": round(cpu / statuses * 1e6, 1) if statuses else None,
        "ingest_worker_us_per_message": round(ingest_cpu / stored * 1e6, 1) if stored else None,
        "database_cpu_us_per_message": (round(db_cpu / stored * 1e6, 1)
                                        if stored and database is not None else None),
        "server_cpu_pct": measure.cpu_percent(cpu_before, cpu_after),
        "server_idle_cpu_pct": idle,
        "drain_s": round(drain, 2),
        "status_p50_ms": measure.lag_percentile(lags, 0.50),
        "status_p95_ms": measure.lag_percentile(lags, 0.95),
    }


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/ingest_cost.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--terminals", type=int, default=50000,
                        help="terminals enrolled, each publishing in turn (default 50000)")
    parser.add_argument("--rate", type=float, default=5000.0,
                        help="messages per second (default 5000: 50,000 terminals every 10 s)")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="seconds measured after the warm-up (default 30)")
    parser.add_argument("--events-every", type=int, default=0, metavar="K",
                        help="every K-th message an event instead of a status (default: none)")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="py-spy's collapsed stacks of the window into FILE, and a summary")
    parser.add_argument("--top", type=int, default=30, help="functions listed (--profile)")
    parser.add_argument("--summarize", type=Path, metavar="FILE",
                        help="only summarize an earlier --profile FILE, and exit")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one, "
                        "deleted after)")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="passed to `batm-server run` (repeatable)")
    parser.add_argument("--json", action="store_true", help="the figures as one JSON object")
    args = parser.parse_args(argv)
    if args.summarize:
        print(summarize_profile(args.summarize, args.top))
        return 0
    if args.terminals < 1 or args.rate <= 0 or args.duration <= 0:
        parser.error("--terminals, --rate and --duration must be positive")
    if args.profile:
        args.profile = args.profile.resolve()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="batm-ingest-cost-", dir="/var/tmp"))
    directory.mkdir(parents=True, exist_ok=True)
    fd_limit_for(1000)
    servers = None
    try:
        servers = FleetServers(directory, 1, POSTGRESQL if args.database == "postgresql"
                               else SQLITE, tuple(args.server_arg))
        if servers.postgres is not None:
            from sim import postgres

            problem = postgres.missing()
            if problem:
                say(f"--database postgresql needs {problem}")
                return 1
        servers.start()
        report = asyncio.run(measure_server(args, servers.replicas[0], servers.postgres))
    finally:
        if servers is not None:
            with contextlib.suppress(Exception):
                servers.stop()
            if args.dir is None and servers.postgres is not None:
                shutil.rmtree(servers.postgres.home, ignore_errors=True)  # kept for a fleet
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['database']}: {report['terminals']} terminals, {report['rate']:g} msg/s: "
              f"server {report['server_cpu_us_per_message']} CPU-µs per stored message "
              f"({report['server_cpu_us_per_status']} per status; ingest worker "
              f"{report['ingest_worker_us_per_message']}), {report['server_cpu_pct']} % of a "
              f"core (idle {report['server_idle_cpu_pct']} %); PostgreSQL's processes "
              f"{report['database_cpu_us_per_message']} CPU-µs per message; sent "
              f"{report['sent']}, stored {report['stored']}, refused {report['refused']}, "
              f"batches {report['batches']}; "
              f"status lag p50/p95 {report['status_p50_ms']}/{report['status_p95_ms']} ms, "
              f"stored {report['drain_s']} s after the last publish (wall-clock)")
    if args.profile:
        print(summarize_profile(args.profile, args.top))
    return 0 if report["stored"] >= report["sent"] else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
