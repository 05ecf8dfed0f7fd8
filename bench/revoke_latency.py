"""Revocation and grant on an idle broker, by the number of accounts in the dynsec file.

    PYTHONPATH=. .venv/bin/python bench/revoke_latency.py [--accounts 1000,5000,15000,20000]
        [--revokes 20] [--grants 10] [--no-strace] [--json]

For each N: a real Mosquitto set up by master/broker.py with N terminal accounts (written in
bulk at a start, as enrollment does: Broker.add_accounts), the server's real client
(master/link.py) and K terminals connected over TLS. The K terminals are unpaired one after the
other, as batm-sim fleet does under load: the clock starts when MasterLink.revoke is called and
stops when the terminal's client sees its connection end. Then G terminals are granted new
credentials (MasterLink.grant, waited for).

Printed per N: revocation median/p95 (unpair → session cut, wall-clock) and how long revoke()
held its caller; grant median/p95 (wall-clock); the plugin's saves per revoke and per grant
(rename() calls onto dynamic-security.json counted with strace on a few extra operations,
untimed); broker CPU ms per revoke and per grant (from /proc: robust to a loaded machine, unlike
the wall-clock figures); the dynsec file's size after the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from batm_common.hostaddr import ServerAddress
from server.ca import ensure_certificates
from server.db.engine import open_database
from server.master.broker import DYNSEC_FILE, Broker, BrokerSettings
from server.master.dynsec import password_hash
from server.master.ingest import Ingest
from server.master.link import MasterLink

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def broker_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Terminal:
    """A terminal's MQTT session on the TLS listener; `lost` is set when the broker ends it."""

    def __init__(self, host: str, port: int, cafile: Path, serial: str, password: str):
        context = ssl.create_default_context(cafile=str(cafile))
        context.check_hostname = False
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=serial,
                                  reconnect_on_failure=False)
        self.client.username_pw_set(serial, password)
        self.client.tls_set_context(context)
        self.connected, self.lost = threading.Event(), threading.Event()
        self.refused: str | None = None

        def on_connect(_c, _u, _f, reason_code, _p):
            if reason_code.is_failure:
                self.refused = str(reason_code)
            self.connected.set()

        self.client.on_connect = on_connect
        self.lost_at = 0.0  # time.monotonic() when the session ended (the callback's thread)

        def on_disconnect(*_):
            self.lost_at = time.monotonic()
            self.lost.set()

        self.client.on_disconnect = on_disconnect
        self.client.connect_async(host, port, keepalive=60)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.contextmanager
def stderr_to(path: Path):
    """Mosquitto, started meanwhile, inherits this stderr: its connection log goes to `path`."""
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def count_saves(pid: int, path: Path, action) -> int:
    """How many times the plugin renamed its new file over `path` while `action` ran."""
    log = path.with_name("strace.log")
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=rename,renameat,renameat2",
                               "-o", str(log), "-p", str(pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # attached
        action()
        time.sleep(0.5)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(10)
    text = log.read_text() if log.exists() else ""
    log.unlink(missing_ok=True)
    # Debian's 2.0.11 renames the file onto itself (its "<file>.new" name is cut to the file's
    # own length: fixed upstream in 2.0.16), so count renames onto the file, whatever the source.
    return sum(1 for line in text.splitlines() if f'"{path}") = 0' in line)


def quiesce(link: MasterLink) -> None:
    """Wait until the broker has done every dynsec command sent before (they run in order)."""
    link.dynsec([{"command": "getDefaultACLAccess"}], timeout=120)


def run(accounts: int, revokes: int, grants: int, use_strace: bool) -> dict:
    base = Path(tempfile.mkdtemp(prefix="batm-bench-revoke-"))
    serials = [f"BENCH{i:06d}" for i in range(accounts)]
    paired = set(serials)
    passwords = {s: secrets.token_urlsafe(32) for s in serials[: revokes + grants + 6]}
    shared = password_hash(secrets.token_urlsafe(32))
    broker = link = None
    terminals: list[Terminal] = []
    try:
        certs = ensure_certificates(base, ["127.0.0.1"])
        broker = Broker(BrokerSettings(base, ServerAddress("127.0.0.1", 0), certs.leaf_cert_path,
                                       certs.leaf_key_path), paired=lambda: paired)
        broker.prepare()
        hashed = {s: password_hash(passwords[s]) if s in passwords else shared for s in serials}
        with stderr_to(base / "mosquitto.log"):
            broker.start()
            broker.add_accounts(hashed)
        link = MasterLink(broker, Ingest(open_database(base)))
        link.start()
        if not link.wait_connected(30):
            raise RuntimeError("the server's client did not connect")
        dynsec_file = broker.dir / DYNSEC_FILE

        sample = serials[:revokes]
        terminals = [Terminal("127.0.0.1", broker.mqtt_port, certs.ca_cert_path, s, passwords[s])
                     for s in sample]
        for t in terminals:
            if not t.connected.wait(30) or t.refused:
                raise RuntimeError(f"a terminal did not connect ({t.refused})")

        cut, held = [], []
        cpu = broker_cpu(broker.pid)
        for serial, terminal in zip(sample, terminals, strict=True):
            started = time.monotonic()
            if not link.revoke(serial):
                raise RuntimeError(f"revoking {serial} failed")
            held.append((time.monotonic() - started) * 1000)
            if not terminal.lost.wait(60):
                raise RuntimeError(f"{serial}'s session was not cut")
            cut.append((terminal.lost_at - started) * 1000)
            paired.discard(serial)
        quiesce(link)
        cpu_revoke = (broker_cpu(broker.pid) - cpu) / revokes * 1000

        granted = []
        cpu = broker_cpu(broker.pid)
        for serial in serials[revokes: revokes + grants]:
            started = time.monotonic()
            link.grant(serial, passwords[serial])
            granted.append((time.monotonic() - started) * 1000)
        quiesce(link)
        cpu_grant = (broker_cpu(broker.pid) - cpu) / grants * 1000

        saves_revoke = saves_grant = None
        if use_strace and shutil.which("strace"):
            extra = serials[revokes + grants: revokes + grants + 3]

            def revoke_extra():
                for serial in extra:
                    link.revoke(serial)
                    paired.discard(serial)
                quiesce(link)

            def grant_extra():
                for serial in serials[revokes + grants + 3: revokes + grants + 6]:
                    link.grant(serial, passwords[serial])
                quiesce(link)

            saves_revoke = count_saves(broker.pid, dynsec_file, revoke_extra) / 3
            saves_grant = count_saves(broker.pid, dynsec_file, grant_extra) / 3

        return {
            "accounts": accounts,
            "revoke_cut_p50_ms": round(statistics.median(cut), 1),
            "revoke_cut_p95_ms": round(percentile(cut, 0.95), 1),
            "revoke_held_p50_ms": round(statistics.median(held), 1),
            "grant_p50_ms": round(statistics.median(granted), 1),
            "grant_p95_ms": round(percentile(granted, 0.95), 1),
            "saves_per_revoke": saves_revoke,
            "saves_per_grant": saves_grant,
            "broker_cpu_ms_per_revoke": round(cpu_revoke, 1),
            "broker_cpu_ms_per_grant": round(cpu_grant, 1),
            "dynsec_bytes": dynsec_file.stat().st_size,
        }
    finally:
        for t in terminals:
            t.close()
        if link is not None:
            link.stop()
        if broker is not None:
            broker.stop()
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="bench/revoke_latency.py", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--accounts", default="1000,5000,15000,20000",
                        help="numbers of accounts in the dynsec file, comma-separated")
    parser.add_argument("--revokes", type=int, default=20, help="terminals unpaired per N")
    parser.add_argument("--grants", type=int, default=10, help="grants timed per N")
    parser.add_argument("--no-strace", action="store_true",
                        help="do not count the plugin's saves with strace")
    parser.add_argument("--json", action="store_true", help="one JSON object per N")
    args = parser.parse_args(argv)
    try:
        sizes = [int(n) for n in args.accounts.split(",")]
    except ValueError:
        parser.error(f"--accounts: not a list of numbers: {args.accounts!r}")
    if any(n < args.revokes + args.grants + 6 for n in sizes):
        parser.error("--accounts: each N must be at least revokes + grants + 6")
    for n in sizes:
        row = run(n, args.revokes, args.grants, not args.no_strace)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"N={n:>6}: unpair→cut p50 {row['revoke_cut_p50_ms']} ms "
                  f"p95 {row['revoke_cut_p95_ms']} ms (revoke() held {row['revoke_held_p50_ms']}"
                  f" ms); grant p50 {row['grant_p50_ms']} p95 {row['grant_p95_ms']} ms; saves/"
                  f"revoke {row['saves_per_revoke']} /grant {row['saves_per_grant']}; broker CPU"
                  f" {row['broker_cpu_ms_per_revoke']} ms/revoke {row['broker_cpu_ms_per_grant']}"
                  f" ms/grant; file {row['dynsec_bytes']:,} B", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
