"""Pairing latency on the simulated rig: set-server → pairing_code and approve → in_service.

    .venv/bin/python bench/pairing_latency.py [--runs 20] [--dir D] [--display]
                                              [--database postgresql [--replicas 2]]

Timestamps come from a subscription to the agent's control socket (docs/protocol.md §4): the
moment each screen-change event arrives, on the same monotonic clock as the moment the request
was sent. set_server goes over the control socket and approve over the server's admin socket
(the HTTP API the CLI uses), so neither number includes a CLI's Python start-up. Between runs
the terminal is wiped (state dir deleted, agent restarted: it shows set_server again, and its
next hello opens a new pairing request). Needs root (namespaces), like the HIL suite.

`--database postgresql` runs the rig's server on PostgreSQL; `--replicas 2` adds a second server
process on that database and approves through it, while the terminal long-polls the first: the
approval crosses processes through LISTEN/NOTIFY (sim/replicas.py, server/notify.py).
"""

from __future__ import annotations

import argparse
import json
import math
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from batm_common.control_client import ControlClient, ControlError, call
from sim import lifecycle
from sim.layout import DEFAULT_VERSION, SUPERVISOR, TerminalSpec
from sim.rigfile import RigFile, load_rig_file

SERIAL = "BENCH0001"
TIMEOUT = 30.0


class Watcher:
    """Screen changes of one agent, as (monotonic arrival time, screen id), in a thread."""

    def __init__(self, control_socket: str):
        self.events: queue.Queue[tuple[float, str]] = queue.Queue()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(control_socket,), daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError(f"cannot subscribe to {control_socket}")

    def _run(self, path: str) -> None:
        try:
            with ControlClient(path, timeout=3600) as client:
                for screen in client.screens():
                    self.ready.set()
                    self.events.put((time.monotonic(), screen["screen"]))
        except (ControlError, OSError):
            self.events.put((time.monotonic(), "<closed>"))

    def wait_for(self, screen_id: str, timeout: float = TIMEOUT) -> float:
        deadline = time.monotonic() + timeout
        while True:
            try:
                arrived, shown = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"{screen_id} did not show within {timeout:g}s") from None
            if shown == screen_id:
                return arrived
            if shown == "<closed>":
                raise RuntimeError("the agent closed the subscription")


def admin_client(rig: RigFile, replica: int = 1) -> httpx.Client:
    """The admin API of the server's first replica, or of the `replica`-th."""
    server = rig.server if replica == 1 else rig.server.replicas[replica - 2]
    info = json.loads((Path(server.data_dir) / "server.json").read_text())
    transport = httpx.HTTPTransport(uds=info["admin_socket"])
    return httpx.Client(transport=transport, base_url="http://batm-server", timeout=TIMEOUT)


def wait_request_code(admin: httpx.Client, serial: str, not_request: str | None) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for r in admin.get("/api/v1/pairing-requests").json():
            if r["serial"] == serial and r.get("code") and r["request_id"] != not_request:
                return r
        time.sleep(0.02)
    raise TimeoutError(f"no pairing request with a code for {serial}")


def one_run(rig: RigFile, admin: httpx.Client, previous: str | None) -> tuple[float, float, str]:
    terminal = rig.terminal(SERIAL)
    control = str(Path(terminal.state_dir) / "control.sock")
    watcher = Watcher(control)
    sent = time.monotonic()
    call(control, {"cmd": "set_server", "address": rig.server.gate_address})
    shown = watcher.wait_for("pairing_code")
    request = wait_request_code(admin, SERIAL, previous)
    approving = approve(admin, SERIAL, request["code"])
    in_service = watcher.wait_for("in_service")
    return (shown - sent) * 1000, (in_service - approving) * 1000, request["request_id"]


def approve(admin: httpx.Client, serial: str, code: str) -> float:
    """Approve through the admin socket; the monotonic time just before the request."""
    approving = time.monotonic()
    answer = admin.post(f"/api/v1/pairing-requests/{serial}/approve", json={"code": code})
    if answer.status_code != 200:
        raise RuntimeError(f"approve failed: {answer.status_code} {answer.text}")
    return approving


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None, help="rig dir (default: a temp dir)")
    parser.add_argument("--display", action="store_true", help="also run Xvfb + batm-display")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--replicas", type=int, choices=[1, 2], default=1,
                        help="2: approve through a second server process (needs postgresql)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.replicas == 2 and args.database != "postgresql":
        parser.error("--replicas 2 needs --database postgresql")
    rig_dir = args.dir or Path(tempfile.mkdtemp(prefix="batm-bench-"))
    try:
        up = lifecycle.up(rig_dir, [TerminalSpec(SERIAL, DEFAULT_VERSION)], "B",
                          display=args.display, database=args.database,
                          server_replicas=args.replicas)
    except Exception as exc:
        print(f"pairing_latency: {exc}", file=sys.stderr)
        return 1
    print(f"rig up in {up.seconds:.2f}s ({rig_dir}); database {args.database}, "
          f"approving through replica {args.replicas} of {args.replicas}")
    set_to_code: list[float] = []
    approve_to_service: list[float] = []
    try:
        rig = load_rig_file(up.rig_file)
        assert rig.supervisor is not None
        with admin_client(rig, args.replicas) as admin:
            admin.post("/api/v1/terminals", json={"serial": SERIAL, "scenario": "B",
                                                  "location": None}).raise_for_status()
            previous = None
            for run in range(args.runs):
                if run:
                    call(rig.supervisor, {"cmd": "terminal", "serial": SERIAL,
                                          "action": "wipe"}, timeout=60, peer=SUPERVISOR)
                a, b, previous = one_run(rig, admin, previous)
                set_to_code.append(a)
                approve_to_service.append(b)
                print(f"run {run + 1:3d}: set-server→pairing_code {a:7.1f} ms   "
                      f"approve→in_service {b:7.1f} ms", flush=True)
    finally:
        lifecycle.down(rig_dir)
    for name, values in (("set-server → pairing_code", set_to_code),
                         ("approve → in_service", approve_to_service)):
        print(f"{name:27s} n={len(values)}  median {statistics.median(values):7.1f} ms  "
              f"p95 {percentile(values, 0.95):7.1f} ms  max {max(values):7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
