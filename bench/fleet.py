"""The largest fleet the servers hold: status every 10 s, nothing lost, status p95 < 1 s, TLS.

    .venv/bin/python bench/fleet.py [--dir D] [--start 1000] [--max 100000]
        [--min 100] [--interval 10] [--duration 60] [--provision bulk|signed]
        [--database sqlite|postgresql] [--replicas R] [--processes K] [--server-arg ARG]...

Runs `batm-sim fleet --json` (sim/fleet/) for growing N — doubling from --start while a run
passes, then halving the gap between the largest pass and the smallest failure until it is
under 10 % — and prints each run with every process's CPU (the servers, their brokers,
PostgreSQL, the simulator's own processes: which one saturates), then the largest passing N
with the servers' and the brokers' CPU and RSS per 1,000 terminals and the revocation p95 under
that load. A run passes when every terminal connected, lost == 0, status_p95_ms < 1000 and the
simulator offered ≥ 99 % of the statuses due (a load generator that falls behind offers less
than N terminals at S seconds, and stamps its statuses late, where the status lag cannot see it).

The fleet lives in D (default /var/tmp/batm-fleet-bench[-postgresql][-rR]) and is provisioned
once, growing as N grows (`--provision bulk`: the enrollment carries the broker accounts, one
broker restart per 10,000 terminals; `signed` makes each account through the plugin, O(N²),
only for small N). A D belongs to one topology (--replicas): use another D for another.

Open files. Every process has its own limit (`ulimit -Hn`; 20,000 in this sandbox, which may not
be raised here): the simulator splits its terminals over processes of ≤ 15,000 each
(--processes, default ⌈N / 15,000⌉), and a broker holds at most its limit − 256 connections, so
one server (SQLite) stops near 19,700 terminals; beyond, run R replicas on PostgreSQL, each with
its own broker (`--replicas R`; terminals spread over the brokers by their serial, ≈ N / R each).
N above 20,000 spreads the simulator's source addresses over 127.x.0.1 (one address has
≈ 28,000 ephemeral ports towards one broker).

50,000 terminals on one machine, 3 replicas on one PostgreSQL (≈ 16,700 per broker, 4
simulator processes), status every 10 s, one run (three is the fewest brokers that hold 50,000
here, and fewer processes leave more of the two cores to the work). The first run provisions
the fleet (bulk enrollments per broker, then 50,000 signed check-ins: ≈ 4 minutes here) and
keeps it in D; connecting 50,000 takes ≈ 100 s (TLS handshakes), so a run takes ≈ 3.5 minutes
after that:

    PYTHONPATH=. .venv/bin/python bench/fleet.py --database postgresql --replicas 3 \
        --start 50000 --max 50000 --min 50000 --duration 60

and the largest one server holds on SQLite (one broker: 19,744 connections at a hard open-file
limit of 20,000):

    PYTHONPATH=. .venv/bin/python bench/fleet.py --start 12000 --max 19700 --duration 60
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
REPORT_FILE = "fleet-report.json"  # sim/fleet/run.py writes every figure there
P95_LIMIT_MS = 1000.0
# The simulator must have offered the load: a generator that falls behind sends fewer statuses
# than N terminals at S seconds (and stamps them late, which the status lag cannot see).
OFFERED_MIN_PCT = 99.0


def run_fleet(args: argparse.Namespace, terminals: int) -> dict | None:
    command = [str(BIN / "batm-sim"), "fleet", "--dir", str(args.dir),
               "--terminals", str(terminals), "--interval", str(args.interval),
               "--duration", str(args.duration), "--provision", args.provision,
               "--database", args.database, "--replicas", str(args.replicas), "--json",
               *(["--processes", str(args.processes)] if args.processes else []),
               *(f"--server-arg={arg}" for arg in args.server_arg)]
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if run.returncode != 0:
        print(f"  N={terminals}: batm-sim fleet failed ({run.returncode}): "
              f"{run.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    report = json.loads(run.stdout)
    report["wall_s"] = round(seconds, 1)
    # Every figure of the run (per process, the simulator's own cost) is in its report file.
    report["extra"] = json.loads((args.dir / REPORT_FILE).read_text())["extra"]
    return report


def passes(report: dict | None, terminals: int) -> bool:
    return (report is not None and report["terminals"] == terminals and report["lost"] == 0
            and report["status_p95_ms"] is not None and report["status_p95_ms"] < P95_LIMIT_MS
            and (report["extra"].get("statuses_offered_pct") or 0) >= OFFERED_MIN_PCT)


def show(terminals: int, report: dict | None) -> None:
    if report is None:
        return
    verdict = "pass" if passes(report, terminals) else "FAIL"
    print(f"  N={terminals:>7}  {verdict}  connected {report['terminals']}, sent {report['sent']}, "
          f"lost {report['lost']}, status p50/p95 {report['status_p50_ms']}/"
          f"{report['status_p95_ms']} ms, server {report['server_cpu_pct']} % "
          f"{report['server_rss_mb']} MB, broker {report['broker_cpu_pct']} % "
          f"{report['broker_rss_mb']} MB, revoke p95 {report['revoke_p95_ms']} ms "
          f"({report['wall_s']} s)", flush=True)
    extra = report["extra"]
    postgres = (f", PostgreSQL {extra['postgres_cpu_pct']} % {extra['postgres_rss_mb']} MB"
                if extra.get("postgres_cpu_pct") is not None else "")
    print(f"           simulator {extra['simulator_cpu_pct']} % "
          f"({extra['simulator_cpu_us_per_message']} CPU-µs/message; offered "
          f"{extra.get('statuses_offered_pct')} % of the statuses due, beats late p95/max "
          f"{extra.get('beat_late_p95_ms')}/{extra.get('beat_late_max_ms')} ms){postgres}; "
          "per process: "
          + ", ".join(f"{p['name']} {p['cpu_pct']} %" for p in extra["processes"]), flush=True)
    if len(extra["per_replica"]) > 1:
        print("           status p50/p95 per replica: " + ", ".join(
            f"{name} {r['status_p50_ms']}/{r['status_p95_ms']} ms"
            for name, r in extra["per_replica"].items()), flush=True)


def per_thousand(report: dict, terminals: int) -> str:
    k = terminals / 1000
    return (f"server {report['server_cpu_pct'] / k:.2f} % of a core and "
            f"{report['server_rss_mb'] / k:.1f} MB, broker {report['broker_cpu_pct'] / k:.2f} % "
            f"and {report['broker_rss_mb'] / k:.1f} MB{_postgres(report, k)} per 1,000 "
            "terminals")


def _postgres(report: dict, k: float) -> str:
    extra = report["extra"]
    if extra.get("postgres_cpu_pct") is None:
        return ""
    return (f", PostgreSQL {extra['postgres_cpu_pct'] / k:.2f} % and "
            f"{extra['postgres_rss_mb'] / k:.1f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/fleet.py", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=None,
                        help="the fleet's directory, reused between runs (default "
                             "/var/tmp/batm-fleet-bench[-postgresql])")
    parser.add_argument("--start", type=int, default=1000, help="the first N (default 1000)")
    parser.add_argument("--max", type=int, default=100000, help="the largest N tried")
    parser.add_argument("--min", type=int, default=100,
                        help="the smallest N tried when runs fail (default 100; --start X "
                             "--max X --min X: one run)")
    parser.add_argument("--interval", type=float, default=10.0,
                        help="seconds between a terminal's statuses (default 10)")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds each run measures (default 60)")
    parser.add_argument("--provision", choices=["bulk", "signed"], default="bulk",
                        help="broker accounts in bulk with the enrollment (default) or one by one")
    parser.add_argument("--database", default="sqlite",
                        help="the servers' database: sqlite (default), postgresql (a "
                             "throw-away, durable PostgreSQL from Debian's package kept in "
                             "D/postgres, sim/postgres.py), or a postgresql+psycopg:// URL")
    parser.add_argument("--replicas", type=int, default=1,
                        help="server replicas, each with its own broker (default 1; more "
                             "need --database postgresql)")
    parser.add_argument("--processes", type=int, default=None,
                        help="simulator processes (default: ⌈N / 15,000⌉)")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="passed to `batm-server run` (repeatable)")
    args = parser.parse_args(argv)
    if args.dir is None:
        database = "" if args.database == "sqlite" else "-postgresql"
        replicas = "" if args.replicas == 1 else f"-r{args.replicas}"
        args.dir = Path(f"/var/tmp/batm-fleet-bench{database}{replicas}")
    return search(args)


def search(args: argparse.Namespace) -> int:
    print(f"fleet bench: status every {args.interval:g} s for {args.duration:g} s, TLS, "
          f"pass = all connected, 0 lost, status p95 < {P95_LIMIT_MS:.0f} ms, "
          f"≥ {OFFERED_MIN_PCT:g} % of the statuses due offered; "
          f"{args.database}, {args.replicas} replica(s); dir {args.dir}", flush=True)
    best: tuple[int, dict] | None = None
    failed: int | None = None
    terminals = args.start
    while True:
        report = run_fleet(args, terminals)
        show(terminals, report)
        if passes(report, terminals):
            best = (terminals, report)  # type: ignore[assignment]
        else:
            failed = terminals
        low = best[0] if best else 0
        if failed is None:
            if terminals >= args.max:
                break
            terminals = min(args.max, terminals * 2)
        else:
            if failed - low <= max(100, low // 10) or failed <= args.min:
                break
            terminals = max(args.min, (low + failed) // 2)
    if best is None:
        print(f"no N passed (the smallest tried was {args.start})")
        return 1
    n, report = best
    print(f"largest N passing: {n} (status p95 {report['status_p95_ms']} ms, lost 0)")
    print(f"per 1,000 terminals: {per_thousand(report, n)}")
    print(f"revocation under that load: p95 {report['revoke_p95_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
