"""batm-sim: the simulated HIL rig.

    batm-sim up --dir D [--terminals N] [--versions V,...] [--scenario A|B] [--serials S,...]
    batm-sim down --dir D
    batm-sim server stop|start|restart --dir D
    batm-sim terminal stop|start|restart|kill|wipe SERIAL --dir D [--clock-offset SECONDS]
    batm-sim status --dir D
    batm-sim demo [--dir D]
    batm-sim fleet --dir D --terminals N --interval S --duration S [--processes K]
        [--replicas R --database postgresql] [--json]

See sim/README.md for the rig layout and the rig.json extensions.
"""

from __future__ import annotations

import argparse
import json
import sys

from server.settings import non_negative_int, positive_int  # the same rules as the server's options
from sim import lifecycle
from sim.layout import parse_terminal_specs
from sim.prereqs import PrerequisiteError
from sim.rigfile import RigFileError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batm-sim", description="The simulated HIL rig.")
    sub = parser.add_subparsers(dest="verb", required=True)

    up = sub.add_parser("up", help="start a rig in the background, write D/rig.json")
    up.add_argument("--dir", required=True)
    up.add_argument("--terminals", type=int, default=1)
    up.add_argument("--versions", help="V or V1,V2,… (YYYYMMDD), default 20230801")
    up.add_argument("--scenario", choices=["A", "B"], default="B")
    up.add_argument("--serials", help="S1,S2,… (default SIM00001, SIM00002, …)")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness")
    up.add_argument("--no-display", action="store_true",
                    help="no Xvfb and no batm-display (faster; no screenshots)")
    up.add_argument("--loopback", action="store_true",
                    help="no namespaces even as root: everything on 127.0.0.1 (as without root)")
    up.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite",
                    help="the server's database: its SQLite file (default), or a throw-away "
                         "PostgreSQL in D/postgres")
    up.add_argument("--replicas", type=int, default=1, metavar="N",
                    help="server processes on that database (1 or 2; 2 needs postgresql)")
    up.add_argument("--stand-ins", action="store_true",
                    help="stand-in processes instead of the product (tests of the rig itself)")

    down = sub.add_parser("down", help="stop the rig, remove its namespaces and links")
    down.add_argument("--dir", required=True)

    server = sub.add_parser("server", help="stop/start/restart the reference server")
    server.add_argument("action", choices=["stop", "start", "restart"])
    server.add_argument("--dir", required=True)

    terminal = sub.add_parser("terminal", help="power actions on a terminal's agent")
    terminal.add_argument("action", choices=["stop", "start", "restart", "kill", "wipe"])
    terminal.add_argument("serial")
    terminal.add_argument("--dir", required=True)
    terminal.add_argument("--clock-offset", type=float, metavar="SECONDS",
                          help="with start/restart: run the agent with its wall clock shifted "
                               "(libfaketime; e.g. 7200 or -34560000; 0 puts it right again)")

    status = sub.add_parser("status", help="the supervisor's view of the rig's processes")
    status.add_argument("--dir", required=True)

    demo = sub.add_parser("demo", help="walk the pairing flow of the seeds, with screenshots")
    demo.add_argument("--dir", default="demo-output")

    fleet = sub.add_parser("fleet", help="N protocol-level terminals against a real server: "
                                         "sent, stored, lost, latency, CPU, RSS, revocation")
    fleet.add_argument("--dir", required=True, help="the fleet and its server (reused)")
    fleet.add_argument("--terminals", type=positive_int, required=True)
    fleet.add_argument("--interval", type=_positive_float, default=10.0,
                       help="seconds between two statuses of a terminal (default 10)")
    fleet.add_argument("--duration", type=_positive_float, default=60.0,
                       help="seconds of load (default 60)")
    fleet.add_argument("--revoke-sample", type=non_negative_int, metavar="M",
                       help="terminals unpaired during the load (default min(10, N/10); "
                            "0: none)")
    fleet.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                       help="passed to `batm-server run` (repeat; e.g. --server-arg=--replica=r1)")
    fleet.add_argument("--provision", choices=["signed", "bulk"], default="signed",
                       help="broker accounts one by one through each terminal's signed "
                            "credentials request (default), or with the enrollment in bulk "
                            "(one broker restart per 10,000; for large fleets)")
    fleet.add_argument("--processes", type=positive_int, metavar="K",
                       help="simulator processes the terminals are split over (default: "
                            "enough that none holds more than 15,000; each process has its "
                            "own open-file limit)")
    fleet.add_argument("--replicas", type=positive_int, default=1, metavar="R",
                       help="server replicas, each with its own broker, terminals assigned "
                            "over the brokers (default 1; more needs --database postgresql)")
    fleet.add_argument("--database", default="sqlite",
                       help="sqlite (the server's own file, default), postgresql (a "
                            "PostgreSQL from Debian's package kept in D/postgres), or a "
                            "postgresql+psycopg:// URL")
    fleet.add_argument("--unpair-through", choices=["owner", "random"], default=None,
                       help="which replica the revocation sample's unpairs go to: the one "
                            "running the terminal's broker, or any at random (default: "
                            "random)")
    fleet.add_argument("--json", action="store_true",
                       help="print the figures as one object (every figure, per process "
                            "too, is kept in D/fleet-report.json)")
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds > 0")
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (lifecycle.RigError, PrerequisiteError, RigFileError, ValueError) as exc:
        print(f"batm-sim {args.verb}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.verb == "up":
        specs = parse_terminal_specs(args.terminals, args.versions, args.serials)
        result = lifecycle.up(args.dir, specs, args.scenario, args.stand_ins, args.timeout,
                              display=not args.no_display, loopback=args.loopback,
                              database=args.database, server_replicas=args.replicas)
        for part in result.left_out:
            print(f"left out: {part}", file=sys.stderr)
        print(f"rig up in {result.seconds:.1f}s: {result.rig_file}")
        return 0
    if args.verb == "down":
        for line in lifecycle.down(args.dir):
            print(line)
        print("rig down")
        return 0
    if args.verb == "server":
        lifecycle.act(args.dir, {"cmd": "server", "action": args.action})
        print(f"server {args.action}: ok")
        return 0
    if args.verb == "terminal":
        request = {"cmd": "terminal", "serial": args.serial, "action": args.action}
        if args.clock_offset is not None:
            request["clock_offset"] = args.clock_offset
        lifecycle.act(args.dir, request)
        skew = "" if args.clock_offset is None else f" (clock offset {args.clock_offset:+g} s)"
        print(f"terminal {args.serial} {args.action}{skew}: ok")
        return 0
    if args.verb == "status":
        print(json.dumps(lifecycle.act(args.dir, {"cmd": "status"}), indent=2))
        return 0
    if args.verb == "demo":
        from sim.demo import run_demo

        return run_demo(args.dir)
    if args.verb == "fleet":
        from pathlib import Path

        from sim.fleet.run import DEFAULT_UNPAIR_THROUGH, FleetOptions
        from sim.fleet.run import main as fleet_main

        options = FleetOptions(Path(args.dir), args.terminals, args.interval, args.duration,
                               args.revoke_sample, tuple(args.server_arg),
                               bulk=args.provision == "bulk", processes=args.processes,
                               replicas=args.replicas, database=args.database,
                               unpair_through=args.unpair_through or DEFAULT_UNPAIR_THROUGH)
        return fleet_main(options, args.json)
    raise AssertionError(args.verb)


if __name__ == "__main__":
    sys.exit(main())
