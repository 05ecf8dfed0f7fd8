"""Scenario A latencies on the simulated rig: approve → in_service through the VPN, and a
restored WireGuard path → in_service.

    .venv/bin/python bench/vpn_latency.py [--runs 20] [--restore-runs 5] [--dir D]

One `--scenario A` rig (wireguard-go in the server's and the terminal's namespaces). Approve
runs: between runs the operator unpairs the terminal (it tears its tunnel down and forgets its
WireGuard key), so every run pairs afresh: approve → check-in with a new key → credentials →
interface made and handshake → MQTT through the tunnel → in_service. Restore runs: an nft rule
in the server's namespace drops UDP 51820 until the terminal shows vpn_error, then the rule goes
and the clock runs until in_service. Timestamps come from a control-socket subscription (see
bench/pairing_latency.py). Needs root (namespaces), like the HIL suite.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pairing_latency import Watcher, admin_client, approve, percentile, wait_request_code

from batm_common.control_client import call
from sim import lifecycle
from sim.layout import DEFAULT_VERSION, TerminalSpec
from sim.rigfile import load_rig_file

SERIAL = "BENCHVPN1"
TABLE = "batm_bench_vpn"


def nft(netns: str, *args: str, check: bool = True) -> None:
    subprocess.run(["ip", "netns", "exec", netns, "nft", *args], check=check,
                   capture_output=True, timeout=30)


def approve_run(rig, admin, control: str, previous: str | None) -> tuple[float, str]:
    watcher = Watcher(control)
    if previous is not None:
        admin.post(f"/api/v1/terminals/{SERIAL}/unpair").raise_for_status()
        watcher.wait_for("pairing_code")
    request = wait_request_code(admin, SERIAL, previous)
    approving = approve(admin, SERIAL, request["code"])
    shown = watcher.wait_for("in_service")
    return (shown - approving) * 1000, request["request_id"]


def restore_run(netns: str, port: int, control: str) -> tuple[float, float]:
    watcher = Watcher(control)
    nft(netns, "add", "table", "inet", TABLE)
    try:
        nft(netns, "add", "chain", "inet", TABLE, "input",
            "{ type filter hook input priority 0 ; }")
        nft(netns, "add", "rule", "inet", TABLE, "input", "udp", "dport", str(port), "drop")
        dropped = time.monotonic()
        error = watcher.wait_for("vpn_error", 60)
    finally:
        nft(netns, "delete", "table", "inet", TABLE, check=False)
    restored = time.monotonic()
    shown = watcher.wait_for("in_service", 60)
    return error - dropped, (shown - restored) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--restore-runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="rig dir (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.restore_runs < 0:
        parser.error("--runs must be at least 1 and --restore-runs at least 0")
    rig_dir = args.dir or Path(tempfile.mkdtemp(prefix="batm-bench-vpn-"))
    try:
        up = lifecycle.up(rig_dir, [TerminalSpec(SERIAL, DEFAULT_VERSION)], "A", display=False)
    except Exception as exc:
        print(f"vpn_latency: {exc}", file=sys.stderr)
        return 1
    print(f"rig up in {up.seconds:.2f}s ({rig_dir})")
    approve_ms: list[float] = []
    detect_s: list[float] = []
    restore_ms: list[float] = []
    try:
        rig = load_rig_file(up.rig_file)
        if not rig.server.vpn or not rig.server.netns:
            print("vpn_latency: the rig has no VPN endpoint (needs root: namespaces)",
                  file=sys.stderr)
            return 1
        terminal = rig.terminal(SERIAL)
        control = str(Path(terminal.state_dir) / "control.sock")
        with admin_client(rig) as admin:
            admin.post("/api/v1/terminals", json={"serial": SERIAL, "scenario": "A",
                                                  "location": None}).raise_for_status()
            admin.post(f"/api/v1/terminals/{SERIAL}/vpn").raise_for_status()
            call(control, {"cmd": "set_server", "address": rig.server.gate_address})
            previous = None
            for run in range(args.runs):
                ms, previous = approve_run(rig, admin, control, previous)
                approve_ms.append(ms)
                print(f"run {run + 1:3d}: approve→in_service {ms:7.1f} ms", flush=True)
            port = int(rig.server.vpn["endpoint"].rsplit(":", 1)[1])
            for run in range(args.restore_runs):
                detect, ms = restore_run(rig.server.netns, port, control)
                detect_s.append(detect)
                restore_ms.append(ms)
                print(f"restore {run + 1:2d}: drop→vpn_error {detect:5.1f} s   "
                      f"restored path→in_service {ms:7.1f} ms", flush=True)
    finally:
        lifecycle.down(rig_dir)
    print(f"{'approve → in_service (A)':31s} n={len(approve_ms)}  median "
          f"{statistics.median(approve_ms):7.1f} ms  p95 {percentile(approve_ms, 0.95):7.1f} ms"
          f"  max {max(approve_ms):7.1f} ms")
    if restore_ms:
        print(f"{'restored path → in_service':31s} n={len(restore_ms)}  median "
              f"{statistics.median(restore_ms):7.1f} ms  p95 "
              f"{percentile(restore_ms, 0.95):7.1f} ms  max {max(restore_ms):7.1f} ms")
        print(f"{'UDP dropped → vpn_error':31s} n={len(detect_s)}  median "
              f"{statistics.median(detect_s):5.1f} s  max {max(detect_s):5.1f} s "
              f"(health window {rig.server.vpn.get('health_window')} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
