"""`batm-sim fleet`: a server, N protocol-level terminals, a load, and its figures.

    batm-sim fleet --dir D --terminals N --interval S --duration S [--json]

1. The reference server runs as `batm-server run` with its data in D/server (kept: a second run
   reuses the provisioned fleet), on loopback, with the file-descriptor limit raised for N
   sockets (the broker inherits it).
2. The fleet (D/fleet.json) is provisioned through the server's real paths (provision.py).
3. Every terminal connects (TLS, its own account; at most CONNECT_CONCURRENCY handshakes at a
   time, source addresses spread over 127.x.0.1 so that N may exceed one address's ephemeral
   ports), then all publish: status every S seconds, an event every EVENTS_EVERY statuses.
4. Halfway through, a sample of terminals is unpaired through the admin API; the time until
   the broker cuts each one's session is the revocation latency.
5. After S seconds the terminals stop; the run waits until the server stored what the broker
   took (or DRAIN_TIMEOUT passes without progress), then reports.

Figures: terminals connected, sent (publishes the broker acknowledged), stored (what the server
committed: its ingest counters, GET /api/v1/master/ingest), lost (sent − stored), the status
lag median/p95 (publish → commit), CPU (% of one core over the load) and RSS of the server and
of the broker, the revocation p95. The revoked sample is deleted on the server afterwards, so
the next run enrolls it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from batm_common.atomic import atomic_write
from sim.fleet import measure
from sim.fleet.mqtt import client_tls
from sim.fleet.provision import (
    ProvisionError,
    admin_client,
    forget,
    gate_client,
    grow_fleet,
    load_fleet,
    provision,
    save_fleet,
)
from sim.fleet.terminal import Counts, FleetTerminal

CONNECT_CONCURRENCY = 200
FIXED_PORTS = (20000, 32000)  # where the broker's port is chosen: under ip_local_port_range
PER_SOURCE_ADDRESS = 20000  # below the 28,232 ephemeral ports of one source address
EVENTS_EVERY = 6  # one event per six statuses (a minute at S = 10)
DRAIN_TIMEOUT = 15.0  # seconds without progress after the load before giving up
SETTLE_TIMEOUT = 300.0  # for the retained statuses a restarted server ingests first
SERVER_START_TIMEOUT = 60.0
JSON_FIELDS = ("terminals", "sent", "stored", "lost", "status_p50_ms", "status_p95_ms",
               "server_cpu_pct", "broker_cpu_pct", "server_rss_mb", "broker_rss_mb",
               "revoke_p95_ms")


class FleetError(Exception):
    """The fleet cannot run; str() says why."""


@dataclass(frozen=True)
class FleetOptions:
    directory: Path
    terminals: int
    interval: float
    duration: float
    revoke_sample: int | None = None  # None: min(10, N // 10)
    server_args: tuple[str, ...] = ()
    bulk: bool = False  # accounts through the enrollment (provision.py)

    def sample_size(self) -> int:
        if self.revoke_sample is not None:
            return min(self.revoke_sample, self.terminals)
        return min(10, self.terminals // 10)


def raise_fd_limit(terminals: int) -> int:
    """Room for N sockets here, and so in the broker: the limit is per process, and the server
    and its Mosquitto inherit it."""
    wanted = terminals + 4096
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(wanted, hard), max(wanted, hard)))
        return wanted
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        raise FleetError(f"{terminals} terminals need {wanted} file descriptors per process, "
                         f"the limit is {soft} (hard {hard}); raise the hard limit first "
                         f"(as root: ulimit -Hn {wanted}; ulimit -n {wanted})")
    return soft


class ServerProcess:
    def __init__(self, data_dir: Path, extra: tuple[str, ...]):
        self.data_dir = data_dir
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.broker_pid: int | None = None

    def _mqtt_port(self) -> int:
        """The broker's port, the same in every run: the fleet keeps the broker address its
        credentials gave it, as a production fleet keeps 8883."""
        path = self.data_dir.parent / "mqtt-port"
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text())
        # Below the ephemeral range: while the broker restarts (bulk accounts), one of the
        # fleet's own outgoing connections could otherwise hold the port.
        for port in random.sample(range(*FIXED_PORTS), 200):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
            atomic_write(path, f"{port}\n".encode())
            return port
        raise FleetError(f"no free port in {FIXED_PORTS[0]}-{FIXED_PORTS[1]} for the broker")

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        info_file = self.data_dir / "server.json"
        info_file.unlink(missing_ok=True)
        binary = Path(sys.executable).with_name("batm-server")
        log = open(self.data_dir.parent / "server.log", "ab")  # noqa: SIM115 (the child's)
        self.proc = subprocess.Popen(
            [str(binary), "run", "--data-dir", str(self.data_dir), "--listen", "127.0.0.1:0",
             "--console-listen", "127.0.0.1:0",
             "--mqtt-listen", f"127.0.0.1:{self._mqtt_port()}", *self.extra],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise FleetError(f"batm-server exited with {self.proc.returncode} at start; see "
                                 f"{self.data_dir.parent / 'server.log'}")
            with contextlib.suppress(OSError, ValueError):
                self.info = json.loads(info_file.read_text())
                return
            time.sleep(0.1)
        raise FleetError(f"batm-server was not ready in {SERVER_START_TIMEOUT:.0f} s; see "
                         f"{self.data_dir.parent / 'server.log'}")

    def stop(self, broker_pid: int | None = None) -> None:
        """Stop the server, and wait for its broker too: the next run binds the same port."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        deadline = time.monotonic() + 30
        while broker_pid and Path(f"/proc/{broker_pid}").exists() \
                and time.monotonic() < deadline:
            time.sleep(0.05)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _ingest(admin) -> dict:
    response = await admin.get("/api/v1/master/ingest")
    response.raise_for_status()
    return response.json()


async def _broker_pid(admin) -> int:
    response = await admin.get("/api/v1/broker")
    response.raise_for_status()
    return int(response.json()["pid"])


async def _connect_all(terminals: list[FleetTerminal], tls, counts: Counts) -> None:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(index: int, terminal: FleetTerminal) -> None:
        local = f"127.{1 + index // PER_SOURCE_ADDRESS}.0.1"
        async with gate:
            try:
                await terminal.connect(tls, local)
            except Exception as exc:
                counts.failed.append(f"{terminal.serial}: connect: {exc}")

    await asyncio.gather(*(one(i, t) for i, t in enumerate(terminals)))


async def _revoke(admin, terminals: list[FleetTerminal]) -> list[float]:
    """Unpair each; the time until its session is cut (ms). One after the other, under load."""
    latencies = []
    for terminal in terminals:
        connection = terminal.connection
        if connection is None or connection.closed.done():
            continue
        started = time.monotonic()
        response = await admin.post(f"/api/v1/terminals/{terminal.serial}/unpair")
        if response.status_code != 200:
            raise FleetError(f"unpairing {terminal.serial}: {response.status_code} "
                             f"{response.text[:200]}")
        try:
            await asyncio.wait_for(asyncio.shield(connection.closed), 30)
        except TimeoutError:
            raise FleetError(f"{terminal.serial}'s session was not cut 30 s after its "
                             "unpair") from None
        latencies.append((time.monotonic() - started) * 1000)
    return latencies


async def _settled(admin) -> dict:
    """The ingest counters once they stand still: a (re)started server first ingests every
    retained status the broker holds, which must not count as this run's."""
    last = await _ingest(admin)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = await _ingest(admin)
        if now["messages"] == last["messages"]:
            return now
        last = now
    raise FleetError(f"the server's ingestion did not settle in {SETTLE_TIMEOUT:.0f} s "
                     "(still storing the broker's retained statuses?)")


async def _drain(admin, before: dict, counts: Counts) -> dict:
    """Wait until the server stored what the broker took, or stops making progress."""
    last, still = -1, time.monotonic()
    while True:
        now = await _ingest(admin)
        stored = now["messages"] - before["messages"]
        if stored >= counts.sent:
            return now
        if stored != last:
            last, still = stored, time.monotonic()
        elif time.monotonic() - still > DRAIN_TIMEOUT:
            return now
        await asyncio.sleep(0.2)


async def run_fleet(options: FleetOptions) -> dict:
    directory = options.directory
    directory.mkdir(parents=True, exist_ok=True)
    raise_fd_limit(options.terminals)
    server = ServerProcess(directory / "server", options.server_args)
    server.start()
    try:
        return await _with_server(options, server)
    finally:
        server.stop(server.broker_pid)


async def _with_server(options: FleetOptions, server: ServerProcess) -> dict:
    directory = options.directory
    fleet = grow_fleet(load_fleet(directory), options.terminals)
    active = fleet[:options.terminals]
    async with admin_client(Path(server.info["admin_socket"])) as admin, \
            gate_client(server.info["gate"], server.data_dir / "ca.pem") as gate:
        started = time.monotonic()
        try:
            granted = await provision(
                active, admin, gate, options.bulk,
                on_progress=lambda done, total: say(f"  provisioned {done}/{total}"))
        finally:
            save_fleet(directory, fleet)
        if granted:
            say(f"provisioned {granted} terminal(s) in {time.monotonic() - started:.1f} s")
        counts = Counts()
        terminals = [FleetTerminal(t, counts, options.interval, EVENTS_EVERY) for t in active]
        tls = client_tls(str(server.data_dir / "ca.pem"))
        started = time.monotonic()
        await _connect_all(terminals, tls, counts)
        say(f"{counts.connected}/{len(terminals)} connected in "
            f"{time.monotonic() - started:.1f} s")
        live = [t for t in terminals if t.connection is not None]
        sample = live[:options.sample_size()]
        server_pid, broker_pid = server.info["pid"], await _broker_pid(admin)
        server.broker_pid = broker_pid
        before = await _settled(admin)
        cpu_before = (measure.cpu_reading(server_pid), measure.cpu_reading(broker_pid),
                      measure.cpu_reading(os.getpid()))
        loop = asyncio.get_running_loop()
        until = loop.time() + options.duration
        load = asyncio.gather(*(t.run(until) for t in live))
        await asyncio.sleep(options.duration / 2)
        try:
            revocations = await _revoke(admin, sample)
        finally:
            await load
        cpu_after = (measure.cpu_reading(server_pid), measure.cpu_reading(broker_pid),
                     measure.cpu_reading(os.getpid()))
        for terminal in live:
            await terminal.connection.drain()  # type: ignore[union-attr]
        after = await _drain(admin, before, counts)
        for terminal in terminals:
            await terminal.close()
        for terminal in sample:
            await forget(admin, terminal.terminal)
        save_fleet(directory, fleet)
        lags = measure.lag_delta(before, after)
        stored = after["messages"] - before["messages"]
        kept = [t for t in live if t not in sample]
        return {
            "terminals": counts.connected,
            "sent": counts.sent,
            "stored": stored,
            "lost": max(0, counts.sent - stored),
            "status_p50_ms": measure.lag_percentile(lags, 0.50),
            "status_p95_ms": measure.lag_percentile(lags, 0.95),
            "server_cpu_pct": measure.cpu_percent(cpu_before[0], cpu_after[0]),
            "broker_cpu_pct": measure.cpu_percent(cpu_before[1], cpu_after[1]),
            "server_rss_mb": measure.rss_mb(server_pid),
            "broker_rss_mb": measure.rss_mb(broker_pid),
            "revoke_p95_ms": (round(measure.percentile(revocations, 0.95), 1)
                              if revocations else None),
            # beyond the JSON's fields: for the human report and bench/fleet.py
            "extra": {
                "published": counts.published,
                "events_sent": counts.events_sent,
                "events_unacknowledged": sum(t.events_unacknowledged for t in kept),
                "revoked": len(revocations),
                "revoke_p50_ms": (round(measure.percentile(revocations, 0.5), 1)
                                  if revocations else None),
                "server_cpu_us_per_message": round(
                    (cpu_after[0].cpu_seconds - cpu_before[0].cpu_seconds) / stored * 1e6, 1)
                if stored else None,
                "ingest_cpu_us_per_message": round(
                    (after["cpu_seconds"] - before["cpu_seconds"]) / stored * 1e6, 1)
                if stored else None,
                # the load generator itself: near 100 % it, not the server, makes the lag
                "simulator_cpu_pct": measure.cpu_percent(cpu_before[2], cpu_after[2]),
                "connect_failures": counts.failed[:5],
                "duration_s": options.duration,
                "interval_s": options.interval,
            },
        }


def human(report: dict) -> str:
    extra = report["extra"]
    lines = [
        f"terminals connected   {report['terminals']}",
        f"messages sent         {report['sent']} (broker-acknowledged; "
        f"{extra['events_sent']} events)",
        f"stored                {report['stored']}",
        f"lost                  {report['lost']}",
        f"status → stored       p50 {report['status_p50_ms']} ms, p95 {report['status_p95_ms']} ms",
        f"server                {report['server_cpu_pct']} % CPU, {report['server_rss_mb']} MB RSS "
        f"({extra['server_cpu_us_per_message']} CPU-µs/message; ingest worker "
        f"{extra['ingest_cpu_us_per_message']})",
        f"broker                {report['broker_cpu_pct']} % CPU, {report['broker_rss_mb']} MB RSS",
        f"simulator             {extra['simulator_cpu_pct']} % CPU (100 % = its one core is the "
        "limit)",
        f"unpair → session cut  p50 {extra['revoke_p50_ms']} ms, p95 {report['revoke_p95_ms']} ms "
        f"({extra['revoked']} terminals)",
        f"events unacknowledged {extra['events_unacknowledged']} (not revoked terminals)",
    ]
    if extra["connect_failures"]:
        lines.append(f"connect failures      {extra['connect_failures']}")
    return "\n".join(lines)


def main(options: FleetOptions, as_json: bool) -> int:
    try:
        report = asyncio.run(run_fleet(options))
    except (FleetError, ProvisionError) as exc:
        print(f"batm-sim fleet: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"batm-sim fleet: the server's API failed ({exc}); see "
              f"{options.directory / 'server.log'}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({name: report[name] for name in JSON_FIELDS}))
    else:
        print(human(report))
    return 0
