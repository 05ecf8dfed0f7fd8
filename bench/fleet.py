"""The largest fleet one server holds: status every 10 s, nothing lost, status p95 < 1 s, TLS.

    .venv/bin/python bench/fleet.py [--dir D] [--start 1000] [--max 100000]
        [--interval 10] [--duration 60] [--provision bulk|signed] [--server-arg ARG]...

Runs `batm-sim fleet --json` (sim/fleet/) for growing N — doubling from --start while a run
passes, then halving the gap between the largest pass and the smallest failure until it is
under 10 % — and prints each run, then the largest passing N with the server's and the
broker's CPU and RSS per 1,000 terminals and the revocation p95 under that load. A run passes
when every terminal connected, lost == 0 and status_p95_ms < 1000.

The fleet lives in D (default /var/tmp/batm-fleet-bench) and is provisioned once, growing as N
grows (`--provision bulk`: the enrollment carries the broker accounts, one broker restart per
10,000 terminals; `signed` makes each account through the plugin, O(N²), only for small N).
Each run raises the file-descriptor limit to N + 4096 per process (the simulator's sockets, and
the broker's, which inherits it); that needs a hard limit at least as high: `ulimit -Hn` (in a
container without CAP_SYS_RESOURCE, raise it from outside, e.g. `docker run --ulimit
nofile=200000:200000`). N above 20,000 spreads the simulator's source addresses
over 127.x.0.1 (one address has ≈ 28,000 ephemeral ports). PostgreSQL side by side: repeat with
`--database postgresql` (a throw-away cluster from Debian's package, its own --dir).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
P95_LIMIT_MS = 1000.0


def run_fleet(args: argparse.Namespace, terminals: int) -> dict | None:
    command = [str(BIN / "batm-sim"), "fleet", "--dir", str(args.dir),
               "--terminals", str(terminals), "--interval", str(args.interval),
               "--duration", str(args.duration), "--provision", args.provision, "--json",
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
    return report


def passes(report: dict | None, terminals: int) -> bool:
    return (report is not None and report["terminals"] == terminals and report["lost"] == 0
            and report["status_p95_ms"] is not None and report["status_p95_ms"] < P95_LIMIT_MS)


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


def per_thousand(report: dict, terminals: int) -> str:
    k = terminals / 1000
    return (f"server {report['server_cpu_pct'] / k:.2f} % of a core and "
            f"{report['server_rss_mb'] / k:.1f} MB, broker {report['broker_cpu_pct'] / k:.2f} % "
            f"and {report['broker_rss_mb'] / k:.1f} MB per 1,000 terminals")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/fleet.py", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=None,
                        help="the fleet's directory, reused between runs (default "
                             "/var/tmp/batm-fleet-bench[-postgresql])")
    parser.add_argument("--start", type=int, default=1000, help="the first N (default 1000)")
    parser.add_argument("--max", type=int, default=100000, help="the largest N tried")
    parser.add_argument("--interval", type=float, default=10.0,
                        help="seconds between a terminal's statuses (default 10)")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds each run measures (default 60)")
    parser.add_argument("--provision", choices=["bulk", "signed"], default="bulk",
                        help="broker accounts in bulk with the enrollment (default) or one by one")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite",
                        help="the server's database: its SQLite file (default), or a "
                             "throw-away PostgreSQL from Debian's package (sim/postgres.py)")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="passed to `batm-server run` (repeatable)")
    args = parser.parse_args(argv)
    if args.dir is None:
        suffix = "" if args.database == "sqlite" else f"-{args.database}"
        args.dir = Path(f"/var/tmp/batm-fleet-bench{suffix}")
    if args.database == "sqlite":
        return search(args)
    from sim import postgres  # the bench runs with PYTHONPATH at the checkout (make bench)

    problem = postgres.missing()
    if problem:
        print(f"--database postgresql needs {problem}", file=sys.stderr)
        return 1
    # Kept with the fleet's directory (its server's data lives there), durable like SQLite's.
    with postgres.PostgresInstance(args.dir / "postgres", keep=True, durable=True) as database:
        args.server_arg = [*args.server_arg, f"--database={database.url}"]
        return search(args)


def search(args: argparse.Namespace) -> int:
    print(f"fleet bench: status every {args.interval:g} s for {args.duration:g} s, TLS, "
          f"pass = all connected, 0 lost, status p95 < {P95_LIMIT_MS:.0f} ms; dir {args.dir}",
          flush=True)
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
            if failed - low <= max(100, low // 10):
                break
            terminals = (low + failed) // 2
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
