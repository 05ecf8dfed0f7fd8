"""Master service figures on the simulated rig: status change → server latency, outbox drain rate.

    .venv/bin/python bench/master_link.py [--runs 20] [--events 1000] [--dir D]

Latency: an event is recorded over the agent's control socket (no CLI start-up in the number);
the clock stops when the server's admin API long-poll returns the terminal's status with the new
last_sync (event → outbox → broker → server commit → server's acknowledgement → outbox empty →
status publish → server commit).
Drain: the terminal's link is cut, N events are recorded, the link restored; the drain time runs
from the link's return until the server has acknowledged the last event (the terminal's status
shows an empty outbox and a new last_sync), reconnection included. The span between the first
and the last event's server-side receipt is printed too. Needs root.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

from batm_common.control_client import call
from hil_tests.rig.drivers.master import MasterDriver
from hil_tests.rig.strategies import PairingStrategy
from hil_tests.rig.target import Target
from sim import lifecycle
from sim.layout import DEFAULT_VERSION, TerminalSpec
from sim.rigfile import load_rig_file

SERIAL = "BENCH0001"


def _moment(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/master_link.py")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args(argv)
    rig_dir = args.dir or Path(tempfile.mkdtemp(prefix="batm-bench-master-"))
    lifecycle.up(rig_dir, [TerminalSpec(SERIAL, DEFAULT_VERSION)], display=False)
    try:
        rig = load_rig_file(rig_dir / "rig.json")
        target = Target.for_terminal(rig, 0)
        PairingStrategy(target, timeout=30).transition("in_service")
        master = MasterDriver(rig, target.terminal)
        master.wait_status(lambda s: s["online"] and s["screen"] == "in_service", 30)
        control = str(Path(target.terminal.state_dir) / "control.sock")

        latencies = []
        for i in range(args.runs):
            before = master.status()["last_sync"]
            started = time.monotonic()
            call(control, {"cmd": "record_event", "type": "bench", "data": {"i": i}})
            master.wait_status(lambda s, b=before: s["last_sync"] != b, 10)
            latencies.append((time.monotonic() - started) * 1000)
        latencies.sort()
        p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
        print(f"status change → server: median {statistics.median(latencies):.1f} ms, "
              f"p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms ({args.runs} runs)")

        base = master.events()["count"]
        synced = master.status()["last_sync"]
        master.link("down")
        for i in range(args.events):
            call(control, {"cmd": "record_event", "type": "drain", "data": {"i": i}})
        master.link("up")
        restored = time.monotonic()
        master.wait_status(lambda s: s["outbox_pending"] == 0 and s["last_sync"] != synced, 180)
        drained = time.monotonic() - restored
        events = master.wait_events(base + args.events, 10)
        if events["count"] < base + args.events:
            print(f"drain: only {events['count'] - base} of {args.events} arrived", flush=True)
            return 1
        listed = [e for e in master.events(limit=base + args.events)["events"]
                  if e["type"] == "drain"]
        stamps = sorted(_moment(e["received_at"]) for e in listed)
        span = (stamps[-1] - stamps[0]).total_seconds() or 0.001
        print(f"outbox drain: {args.events} events acknowledged by the server {drained:.2f} s "
              f"after the link came back = {args.events / drained:.0f} events/s, reconnection "
              f"included (server receipt span {span:.2f} s = {args.events / span:.0f} events/s)")
        master.close()
    finally:
        lifecycle.down(rig_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
