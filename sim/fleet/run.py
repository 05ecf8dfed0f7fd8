"""`batm-sim fleet`: servers, N protocol-level terminals in K processes, a load, its figures.

    batm-sim fleet --dir D --terminals N --interval S --duration S [--processes K]
        [--replicas R --database postgresql] [--unpair-through owner|random] [--json]

1. R reference servers run as `batm-server run`, each with its own Mosquitto (servers.py: data
   in D/server, D/server-2, …, kept, so that a second run reuses the provisioned fleet), on
   loopback, on the data dir's SQLite file (R = 1) or one PostgreSQL.
2. The fleet (D/fleet.json) is provisioned through the servers' real paths (provision.py).
3. The terminals are split over K worker processes (worker.py; a process's open-file limit
   bounds its sockets), which connect them (TLS, each its own account on the broker its
   credentials named; source addresses spread over 127.x.0.1 so that N may exceed one
   address's ephemeral ports), then all publish: status every S seconds, an event every
   EVENTS_EVERY statuses. A sample of terminals runs here, in the coordinator, for step 4.
4. Halfway through, the sample is unpaired one by one through an admin API — the replica that
   runs the terminal's broker, or one at random (--unpair-through) — and the time until the
   broker cuts each one's session is the revocation latency.
5. After S seconds the terminals stop; the run waits until the servers stored what the brokers
   took (or DRAIN_TIMEOUT passes without progress), then reports.

Figures: terminals connected, sent (publishes the brokers acknowledged), stored (what the
servers committed: their ingest counters, GET /api/v1/master/ingest, added up), lost (sent −
stored), the status lag median/p95 (publish → commit; the replicas' histograms merged, not their
percentiles averaged), CPU (% of one core over the load) and RSS of the servers and of the
brokers (each summed over all of them), the revocation p95; beyond the JSON, every process's CPU
(the servers, brokers, PostgreSQL, the simulator's own) and the simulator's CPU per message. The
revoked sample is deleted on the server afterwards, so the next run enrolls it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from batm_common.atomic import atomic_write
from server.master.assignment import assign, parse_brokers
from sim.fleet import measure
from sim.fleet.mqtt import client_tls
from sim.fleet.provision import (
    ProvisionError,
    SimTerminal,
    admin_client,
    forget,
    gate_client,
    grow_fleet,
    load_fleet,
    provision,
    save_fleet,
)
from sim.fleet.servers import FleetError, FleetServers, ServerProcess
from sim.fleet.terminal import Counts, FleetTerminal, keep_alive
from sim.fleet.worker import FD_MARGIN
from sim.fleet.workers import Workers, default_processes, split

PER_SOURCE_ADDRESS = 20000  # below the 28,232 ephemeral ports of one source address
EVENTS_EVERY = 6  # one event per six statuses (a minute at S = 10)
DRAIN_TIMEOUT = 15.0  # seconds without progress after the load before giving up
SETTLE_TIMEOUT = 300.0  # for the retained statuses a restarted server ingests first
SETTLE_QUIET = 0.5  # seconds the ingest counters stand still to count as settled
BROKER_FD_RESERVE = 256  # what Mosquitto keeps for itself (server/master/broker.py)
UNPAIR_THROUGH = ("owner", "random")
# Where the sample's unpairs go: any replica, as a load balancer without routing by serial would
# (the account is revoked on its broker wherever the unpair happened, server/master/accounts.py),
# or "owner", the replica running the terminal's broker (no cross-replica wake-up in the path).
DEFAULT_UNPAIR_THROUGH = "random"
JSON_FIELDS = ("terminals", "sent", "stored", "lost", "status_p50_ms", "status_p95_ms",
               "server_cpu_pct", "broker_cpu_pct", "server_rss_mb", "broker_rss_mb",
               "revoke_p95_ms")


@dataclass(frozen=True)
class FleetOptions:
    directory: Path
    terminals: int
    interval: float
    duration: float
    revoke_sample: int | None = None  # None: min(10, N // 10)
    server_args: tuple[str, ...] = ()
    bulk: bool = False  # accounts through the enrollment (provision.py)
    processes: int | None = None  # None: default_processes(N)
    replicas: int = 1
    database: str = "sqlite"  # sqlite, postgresql (a cluster in D/postgres) or a URL
    unpair_through: str = DEFAULT_UNPAIR_THROUGH

    def sample_size(self) -> int:
        if self.revoke_sample is not None:
            return min(self.revoke_sample, self.terminals)
        return min(10, self.terminals // 10)

    def process_count(self) -> int:
        wanted = self.processes or default_processes(self.terminals)
        return max(1, min(wanted, self.terminals - self.sample_size()))


def check_descriptors(options: FleetOptions, per_broker: dict[str, int]) -> None:
    """FleetError before anything starts when a process would run out of descriptors: a worker
    needs one per terminal, a broker one per connection (it inherits the servers' limit, which
    `batm-server run` raises to the hard one)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the sample, the brokers
    share = -(-(options.terminals - options.sample_size()) // options.process_count())
    if share + FD_MARGIN > hard:
        raise FleetError(f"{share} terminals per process need {share + FD_MARGIN} file "
                         f"descriptors, the hard limit is {hard}: use --processes "
                         f"{-(-options.terminals // (hard - FD_MARGIN))} or more")
    broker, most = max(per_broker.items(), key=lambda item: item[1])
    if most > hard - BROKER_FD_RESERVE:
        raise FleetError(f"the broker {broker} would hold {most} connections, more than its "
                         f"max_connections ({hard - BROKER_FD_RESERVE}, from the hard open-file "
                         f"limit {hard}): use more --replicas (each runs a broker; needs "
                         "--database postgresql), or raise the hard limit (ulimit -Hn)")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _ingest(admin) -> dict:
    response = await admin.get("/api/v1/master/ingest")
    response.raise_for_status()
    return response.json()


async def _ingests(admins) -> list[dict]:
    return list(await asyncio.gather(*(_ingest(admin) for admin in admins)))


def _messages(snapshots: list[dict]) -> int:
    return sum(snapshot["messages"] for snapshot in snapshots)


async def _broker_pid(admin) -> int:
    response = await admin.get("/api/v1/broker")
    response.raise_for_status()
    return int(response.json()["pid"])


async def _connect_sample(terminals: list[tuple[FleetTerminal, str]], tls,
                          counts: Counts) -> None:
    for terminal, local_host in terminals:
        try:
            await terminal.connect(tls, local_host)
        except Exception as exc:
            counts.failed.append(f"{terminal.serial}: connect: {exc}")


async def _revoke(admins: list, choose,
                  terminals: list[FleetTerminal]) -> dict[str, tuple[float, float]]:
    """Unpair each through the replica `choose(terminal)` names, one after the other, under
    load; by serial, the time until its session is cut and until the unpair was answered (ms).

    The cut is timed on its own: the replica that owns the account answers only once its
    broker has answered the revocation, which Mosquitto 2.0 does after rewriting its accounts
    file (at 16,700 accounts under load: ≈ 1 s while each terminal had a role of its own,
    ≈ 0.5 s since), while it cut the session before that. Timing
    the cut after the answer had counted the rewrite for unpairs through the owner."""
    latencies = {}
    for terminal in terminals:
        connection = terminal.connection
        if connection is None or connection.closed.done():
            continue
        admin = admins[choose(terminal)]
        cut: list[float] = []
        connection.closed.add_done_callback(lambda _f, cut=cut: cut.append(time.monotonic()))
        started = time.monotonic()
        response = await admin.post(f"/api/v1/terminals/{terminal.serial}/unpair")
        answered = time.monotonic()
        if response.status_code != 200:
            raise FleetError(f"unpairing {terminal.serial}: {response.status_code} "
                             f"{response.text[:200]}")
        try:
            await asyncio.wait_for(asyncio.shield(connection.closed), 30)
        except TimeoutError:
            raise FleetError(f"{terminal.serial}'s session was not cut 30 s after its "
                             "unpair") from None
        # `cut` was filled first: its callback was added before the wait's own.
        latencies[terminal.serial] = ((cut[0] - started) * 1000, (answered - started) * 1000)
    return latencies


async def _settled(admins) -> list[dict]:
    """The ingest counters once they stand still: a (re)started server first ingests every
    retained status its broker holds, which must not count as this run's."""
    last = await _ingests(admins)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        await asyncio.sleep(SETTLE_QUIET)
        now = await _ingests(admins)
        if _messages(now) == _messages(last):
            return now
        last = now
    raise FleetError(f"the servers' ingestion did not settle in {SETTLE_TIMEOUT:.0f} s "
                     "(still storing the brokers' retained statuses?)")


async def _drain(admins, before: list[dict], sent: int) -> list[dict]:
    """Wait until the servers stored what the brokers took, or stop making progress."""
    last, still = -1, time.monotonic()
    while True:
        now = await _ingests(admins)
        stored = _messages(now) - _messages(before)
        if stored >= sent:
            return now
        if stored != last:
            last, still = stored, time.monotonic()
        elif time.monotonic() - still > DRAIN_TIMEOUT:
            return now
        await asyncio.sleep(0.2)


class Processes:
    """The processes whose CPU and memory a run reports, by name: each replica's server and
    broker, PostgreSQL (with its backends), the simulator's workers and coordinator. CPU over
    the load (start() to stop()); RSS at its end."""

    def __init__(self) -> None:
        self.pids: dict[str, tuple[int, bool]] = {}  # name: (pid, with its children)
        self.before: dict[str, measure.CpuReading] = {}
        self.after: dict[str, measure.CpuReading] = {}
        self.rss: dict[str, float] = {}

    def add(self, name: str, pid: int | None, tree: bool = False) -> None:
        if pid is not None:
            self.pids[name] = (pid, tree)

    def _read(self) -> dict[str, measure.CpuReading]:
        return {name: (measure.tree_cpu_reading(pid) if tree else measure.cpu_reading(pid))
                for name, (pid, tree) in self.pids.items()}

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> None:
        self.after = self._read()
        self.rss = {name: measure.tree_rss_mb(pid) if tree else measure.rss_mb(pid)
                    for name, (pid, tree) in self.pids.items()}

    def _named(self, prefix: str) -> list[str]:
        return [name for name in self.pids if name.startswith(prefix)]

    def cpu_seconds(self, prefix: str) -> float:
        return sum(self.after[n].cpu_seconds - self.before[n].cpu_seconds
                   for n in self._named(prefix))

    def cpu_pct(self, prefix: str) -> float:
        return round(sum(measure.cpu_percent(self.before[n], self.after[n])
                         for n in self._named(prefix)), 1)

    def rss_mb(self, prefix: str) -> float:
        return round(sum(self.rss[n] for n in self._named(prefix)), 1)

    def table(self) -> list[dict]:
        return [{"name": name, "pid": pid,
                 "cpu_pct": measure.cpu_percent(self.before[name], self.after[name]),
                 "rss_mb": self.rss[name]}
                for name, (pid, _tree) in self.pids.items()]


async def run_fleet(options: FleetOptions) -> dict:
    if options.unpair_through not in UNPAIR_THROUGH:
        raise FleetError(f"--unpair-through must be one of {', '.join(UNPAIR_THROUGH)}")
    directory = options.directory
    directory.mkdir(parents=True, exist_ok=True)
    servers = FleetServers(directory, options.replicas, options.database, options.server_args)
    fleet = grow_fleet(load_fleet(directory, servers.brokers), options.terminals)
    check_descriptors(options, _per_broker(fleet[:options.terminals], servers))
    try:
        servers.start()
        return await _with_servers(options, servers, fleet)
    finally:
        servers.stop()


def _assigned(servers: FleetServers):
    """serial → the index of the replica running its broker (server/master/assignment.py)."""
    if len(servers.replicas) == 1:
        return lambda _serial: 0
    addresses = parse_brokers(",".join(servers.brokers))
    index = {str(address): i for i, address in enumerate(addresses)}
    return lambda serial: index[str(assign(serial, addresses))]


def _per_broker(active: list[SimTerminal], servers: FleetServers) -> dict[str, int]:
    owner = _assigned(servers)
    counts = dict.fromkeys(servers.brokers, 0)
    for terminal in active:
        counts[servers.brokers[owner(terminal.serial)]] += 1
    return counts


def _source(index: int) -> str:
    return f"127.{1 + index // PER_SOURCE_ADDRESS}.0.1"


async def _with_servers(options: FleetOptions, servers: FleetServers,
                        fleet: list[SimTerminal]) -> dict:
    directory = options.directory
    active = fleet[:options.terminals]
    replicas = servers.replicas
    ca = str(replicas[0].data_dir / "ca.pem")
    async with contextlib.AsyncExitStack() as stack:
        admins = [await stack.enter_async_context(admin_client(Path(r.info["admin_socket"])))
                  for r in replicas]
        gates = [await stack.enter_async_context(gate_client(r.info["gate"], Path(ca)))
                 for r in replicas]
        started = time.monotonic()
        try:
            granted = await provision(
                active, admins, gates, _assigned(servers), options.bulk,
                on_progress=lambda done, total: say(f"  provisioned {done}/{total}"))
        finally:
            save_fleet(directory, fleet, servers.brokers)
        if granted:
            say(f"provisioned {granted} terminal(s) in {time.monotonic() - started:.1f} s")
        workers = Workers()
        try:
            return await _load(options, servers, active, admins, workers, ca)
        finally:
            await workers.kill()
            save_fleet(directory, fleet, servers.brokers)


async def _load(options: FleetOptions, servers: FleetServers, active: list[SimTerminal],
                admins: list, workers: Workers, ca: str) -> dict:
    replicas = servers.replicas
    sample_size = options.sample_size()
    counts = Counts()  # the sample's, here
    sample = [FleetTerminal(t, counts, options.interval, EVENTS_EVERY)
              for t in active[:sample_size]]
    shares = split([[t.serial, t.password, t.broker, _source(i)]
                    for i, t in enumerate(active) if i >= sample_size],
                   options.process_count())
    started = time.monotonic()
    await workers.start(shares, ca, options.interval, EVENTS_EVERY)
    pings = asyncio.create_task(keep_alive(sample))
    await _connect_sample([(t, _source(i)) for i, t in enumerate(sample)], client_tls(ca),
                          counts)
    connected = await workers.connected()
    total_connected = connected["connected"] + counts.connected
    failures = counts.failed[:5] + connected["failures"]
    say(f"{total_connected}/{len(active)} connected in {time.monotonic() - started:.1f} s "
        f"({len(shares)} process(es), {len(replicas)} replica(s))")
    live = [t for t in sample if t.connection is not None]
    for replica, admin in zip(replicas, admins, strict=True):
        replica.broker_pid = await _broker_pid(admin)
    processes = _processes(servers, workers)
    before = await _settled(admins)
    processes.start()
    loop = asyncio.get_running_loop()
    start = loop.time()  # loop.time() is time.monotonic(), as in worker.py
    until = start + options.duration
    await workers.go(start, until)
    pings.cancel()
    load = asyncio.gather(*(t.run(start, until) for t in live))
    await asyncio.sleep(options.duration / 2)
    owner = {t.serial: replicas.index(servers.owner(t.broker)) for t in active[:sample_size]}
    if options.unpair_through == "owner":
        def choose(terminal):
            return owner[terminal.serial]
    else:
        def choose(_terminal):
            return random.randrange(len(admins))
    try:
        revoked = await _revoke(admins, choose, live)
    except BaseException:
        with contextlib.suppress(Exception):  # the servers may be what failed
            await load
            await _forget(admins, owner, sample)
        raise
    finally:
        await load
    await asyncio.sleep(max(0.0, until - loop.time()))
    processes.stop()
    for terminal in live:
        await terminal.connection.drain()  # type: ignore[union-attr]
    done = await workers.done()
    sent = done["sent"] + counts.sent
    revocations = [cut for cut, _answered in revoked.values()]
    answers = [answered for _cut, answered in revoked.values()]
    # Connected and never cut by the broker but for an unpair: the fleet the servers held.
    held = done["alive"] + sum(1 for t in live if t.alive or t.serial in revoked)
    after = await _drain(admins, before, sent)
    unacknowledged = await workers.close()
    await _forget(admins, owner, sample)
    lags = measure.merge_buckets([measure.lag_delta(b, a)
                                  for b, a in zip(before, after, strict=True)])
    stored = _messages(after) - _messages(before)
    ingest_cpu = sum(a["cpu_seconds"] - b["cpu_seconds"] for b, a in zip(before, after,
                                                                         strict=True))
    simulator_cpu = processes.cpu_seconds("simulator")
    late = measure.merge_buckets([done.get("late", {}), counts.late])
    published = done["published"] + counts.published
    events_sent = done["events_sent"] + counts.events_sent
    # Each terminal's beats start at a random point of the first interval: duration / interval
    # statuses each while the simulator keeps its schedule. Counted over the workers' terminals
    # (the sample's unpaired ones stop halfway).
    due = connected["connected"] * options.duration / options.interval
    offered = done["published"] - done["events_sent"]
    return {
        "terminals": held,
        "sent": sent,
        "stored": stored,
        "lost": max(0, sent - stored),
        "status_p50_ms": measure.lag_percentile(lags, 0.50),
        "status_p95_ms": measure.lag_percentile(lags, 0.95),
        "server_cpu_pct": processes.cpu_pct("server"),
        "broker_cpu_pct": processes.cpu_pct("broker"),
        "server_rss_mb": processes.rss_mb("server"),
        "broker_rss_mb": processes.rss_mb("broker"),
        "revoke_p95_ms": (round(measure.percentile(revocations, 0.95), 1)
                          if revocations else None),
        # beyond the JSON's fields: for the human report and bench/fleet.py
        "extra": {
            "published": published,
            "events_sent": events_sent,
            # Whether the simulator offered the load it claims: statuses sent of those due, and
            # how late its beats ran (a late beat's status is stamped when sent, so the status
            # lag does not show it).
            "statuses_offered_pct": round(offered / due * 100, 1)
            if due else None,
            "beat_late_p95_ms": measure.lag_percentile(late, 0.95),
            "beat_late_max_ms": measure.lag_percentile(late, 1.0),
            "events_unacknowledged": unacknowledged,
            "revoked": len(revocations),
            "connected": total_connected,
            "cut_by_the_broker": total_connected - held,
            "unpair_through": options.unpair_through,
            "revoke_p50_ms": (round(measure.percentile(revocations, 0.5), 1)
                              if revocations else None),
            # the unpair request's own answer (the owner replica waits for its broker's)
            "unpair_answer_p95_ms": (round(measure.percentile(answers, 0.95), 1)
                                     if answers else None),
            "server_cpu_us_per_message": round(processes.cpu_seconds("server") / stored * 1e6,
                                               1) if stored else None,
            "ingest_cpu_us_per_message": round(ingest_cpu / stored * 1e6, 1) if stored else None,
            # the load generator itself, which shares the cores with what it measures
            "simulator_cpu_pct": processes.cpu_pct("simulator"),
            "simulator_cpu_us_per_message": round(simulator_cpu / sent * 1e6, 1)
            if sent else None,
            "postgres_cpu_pct": processes.cpu_pct("postgres") if servers.postgres else None,
            "postgres_rss_mb": processes.rss_mb("postgres") if servers.postgres else None,
            "processes": processes.table(),
            "per_broker": _per_broker(active, servers),
            # each replica's own share: one slow replica shows here, a shared cause in all
            "per_replica": {
                replica.name: {
                    "stored": a["messages"] - b["messages"],
                    "status_p50_ms": measure.lag_percentile(measure.lag_delta(b, a), 0.50),
                    "status_p95_ms": measure.lag_percentile(measure.lag_delta(b, a), 0.95),
                    "ingest_cpu_us_per_message": round(
                        (a["cpu_seconds"] - b["cpu_seconds"]) / (a["messages"] - b["messages"])
                        * 1e6, 1) if a["messages"] > b["messages"] else None}
                for replica, b, a in zip(replicas, before, after, strict=True)},
            "connect_failures": failures[:5],
            "replicas": len(replicas),
            "simulator_processes": len(workers.pids),
            "duration_s": options.duration,
            "interval_s": options.interval,
        },
    }


async def _forget(admins: list, owner: dict[str, int], sample: list[FleetTerminal]) -> None:
    """Close the sample and delete it on the servers (through the replica whose broker holds
    each one's account), also after a failed revocation: the next run enrolls it afresh."""
    for terminal in sample:
        await terminal.close()
    for terminal in sample:
        await forget(admins[owner[terminal.serial]], terminal.terminal)


def _processes(servers: FleetServers, workers: Workers) -> Processes:
    processes = Processes()
    replica: ServerProcess
    for replica in servers.replicas:
        processes.add(f"server {replica.name}", replica.pid)
        processes.add(f"broker {replica.name}", replica.broker_pid)
    processes.add("postgres", servers.postgres_pid(), tree=True)
    for number, pid in enumerate(workers.pids, 1):
        processes.add(f"simulator worker {number}", pid)
    processes.add("simulator coordinator", os.getpid())
    return processes


REPORT_FILE = "fleet-report.json"  # the last run's report with every figure, in D


def human(report: dict) -> str:
    extra = report["extra"]
    lines = [
        f"terminals connected   {report['terminals']} ({extra['simulator_processes']} simulator "
        f"process(es), {extra['replicas']} server replica(s))",
        f"messages sent         {report['sent']} (broker-acknowledged; "
        f"{extra['events_sent']} events)",
        f"stored                {report['stored']}",
        f"lost                  {report['lost']}",
        f"status → stored       p50 {report['status_p50_ms']} ms, p95 {report['status_p95_ms']} ms",
        f"servers               {report['server_cpu_pct']} % CPU, {report['server_rss_mb']} MB RSS "
        f"({extra['server_cpu_us_per_message']} CPU-µs/message; ingest workers "
        f"{extra['ingest_cpu_us_per_message']})",
        f"brokers               {report['broker_cpu_pct']} % CPU, {report['broker_rss_mb']} MB RSS",
    ]
    if extra["postgres_cpu_pct"] is not None:
        lines.append(f"postgresql            {extra['postgres_cpu_pct']} % CPU, "
                     f"{extra['postgres_rss_mb']} MB RSS (with its backends)")
    lines += [
        f"simulator             {extra['simulator_cpu_pct']} % CPU, "
        f"{extra['simulator_cpu_us_per_message']} CPU-µs/message; offered "
        f"{extra['statuses_offered_pct']} % of the statuses due, beats late p95 "
        f"{extra['beat_late_p95_ms']} ms, max {extra['beat_late_max_ms']} ms",
        f"unpair → session cut  p50 {extra['revoke_p50_ms']} ms, p95 {report['revoke_p95_ms']} ms "
        f"({extra['revoked']} terminals, through the {extra['unpair_through']} replica; "
        f"the unpair answered: p95 {extra['unpair_answer_p95_ms']} ms)",
        f"events unacknowledged {extra['events_unacknowledged']} (not revoked terminals)",
        *(f"  replica {name}: stored {r['stored']}, status p50 {r['status_p50_ms']} ms, p95 "
          f"{r['status_p95_ms']} ms, ingest {r['ingest_cpu_us_per_message']} CPU-µs/message"
          for name, r in extra["per_replica"].items() if len(extra["per_replica"]) > 1),
        "per process (% of one core over the load; 100 % = that process is the limit):",
        *(f"  {p['name']:<24} {p['cpu_pct']:>6} % {p['rss_mb']:>8} MB"
          for p in extra["processes"]),
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
        print(f"batm-sim fleet: a server's API failed ({exc}); see the server*.log in "
              f"{options.directory}", file=sys.stderr)
        return 1
    atomic_write(options.directory / REPORT_FILE, json.dumps(report, indent=1).encode())
    if as_json:
        print(json.dumps({name: report[name] for name in JSON_FIELDS}))
    else:
        print(human(report))
    return 0
