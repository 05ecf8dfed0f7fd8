"""The console's terminal list — the status monitor — at fleet size: GET /api/v1/terminals and
the list page with 50,000 terminals in the database, unfiltered and with the monitor's filters
(location, updated_within, hide_synced, highlight, the live rows fragment); median and p95 of the
server's own time (its Server-Timing header), in-process (no TLS, no network in the figure).

    .venv/bin/python bench/console_list.py [--terminals 50000] [--runs 50] [--dir D]

Target (issues 10 and 11): p95 < 150 ms for each.
"""

from __future__ import annotations

import argparse
import datetime
import random
import statistics
import tempfile
import time
from pathlib import Path

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy import insert

from batm_common.clock import iso_ms
from server.console.service import console_service
from server.console.totp import code_at
from server.db.engine import open_database
from server.db.master import TerminalStatus
from server.db.terminals import Terminal
from server.http.console.app import create_console_app
from server.pairing.registry import Registry
from server.pairing.requests import PairingRequests
from server.pairing.transactions import Transactions

LOCATIONS = 50
PASSWORD = "bench password 1"
TARGET_MS = 150


def populate(sessions, count: int) -> None:
    """`count` terminals over LOCATIONS locations; a third of them report a status."""
    now = datetime.datetime.now(datetime.UTC)
    rng = random.Random(7)
    states = ["paired"] * 6 + ["never_paired", "pairing", "unpaired"]
    terminals, statuses = [], []
    for i in range(count):
        serial = f"T{i:06d}"
        seen = now - datetime.timedelta(seconds=rng.randrange(86400 * 30))
        terminals.append({"serial": serial, "scenario": "AB"[i % 2],
                          "location": f"L{i % LOCATIONS:02d}", "state": rng.choice(states),
                          "version": 20240101, "last_seen": seen, "created_at": now})
        if i % 3 == 0:
            updated = now - datetime.timedelta(seconds=rng.randrange(86400 * 60))
            synced = now - datetime.timedelta(seconds=rng.randrange(3600))
            statuses.append({"serial": serial, "online": rng.random() < 0.8,
                             "version": rng.choice((20230601, 20240301, 20240301)),
                             "last_update": iso_ms(updated), "last_sync": iso_ms(synced),
                             "last_sync_error": "server did not acknowledge 3 event(s)"
                             if rng.random() < 0.05 else None,
                             "vpn_handshake_age": rng.random() * 120, "rejected": 0})
    with sessions() as session, session.begin():
        session.execute(insert(Terminal), terminals)
        session.execute(insert(TerminalStatus), statuses)


def measure(client: TestClient, path: str, params: dict, runs: int,
            headers: dict | None = None) -> tuple[float, float]:
    times = []
    expected = 204 if "digest" in params else 200
    for _ in range(runs):
        answer = client.get(path, params=params, headers=headers or {})
        assert answer.status_code == expected and answer.url.path == path, answer.text[:200]
        times.append(float(answer.headers["server-timing"].split("dur=")[1]))
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/console_list.py")
    parser.add_argument("--terminals", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args(argv)
    data_dir = args.dir or Path(tempfile.mkdtemp(prefix="batm-bench-console-"))
    sessions = open_database(data_dir)
    started = time.monotonic()
    populate(sessions, args.terminals)
    print(f"{args.terminals} terminals in {time.monotonic() - started:.1f} s")
    transactions = Transactions(sessions)
    console = console_service(sessions, Registry(transactions), PairingRequests(transactions))
    console.users.add("boss", "admin", None, PASSWORD)
    secret = pyotp.parse_uri(console.users.add("five", "operator",
                                               [f"L{i:02d}" for i in range(5)],
                                               PASSWORD)["totp_uri"]).secret
    tokens = {name: console.tokens.create(name) for name in ("boss", "five")}
    client = TestClient(create_console_app(console), base_url="https://bench")
    token = client.get("/login").text.split('name="login_token" value="')[1].split('"')[0]
    client.post("/login", data={"name": "five", "password": PASSWORD, "login_token": token,
                                "code": code_at(secret, datetime.datetime.now(datetime.UTC))})

    cases = [
        ("API, all locations, page 1", "/api/v1/terminals", {}, "boss"),
        ("API, all locations, page 500", "/api/v1/terminals", {"page": 500}, "boss"),
        ("API, sorted by last seen", "/api/v1/terminals",
         {"sort": "last_seen", "order": "desc"}, "boss"),
        ("API, location=L07", "/api/v1/terminals", {"location": "L07"}, "boss"),
        ("API, q=123 (search)", "/api/v1/terminals", {"q": "123"}, "boss"),
        ("API, user of 5 locations", "/api/v1/terminals", {}, "five"),
        ("API, 5 locations, q=12, online", "/api/v1/terminals",
         {"q": "12", "sort": "online"}, "five"),
        ("page, user of 5 locations", "/terminals", {}, None),
        ("page, 5 locations, q=12", "/terminals", {"q": "12"}, None),
        ("page, 5 locations, by version", "/terminals", {"sort": "version"}, None),
        ("monitor API, updated_within=2d", "/api/v1/terminals",
         {"updated_within": "2d"}, "boss"),
        ("monitor API, hide_synced", "/api/v1/terminals", {"hide_synced": "true"}, "boss"),
        ("monitor API, highlight=yellow", "/api/v1/terminals", {"highlight": "yellow"}, "boss"),
        ("monitor API, L07 + within 7d + errors", "/api/v1/terminals",
         {"location": "L07", "updated_within": "7d", "hide_synced": "true"}, "boss"),
        ("monitor API, by last sync, desc", "/api/v1/terminals",
         {"sort": "last_sync", "order": "desc"}, "boss"),
        ("monitor page, 5 loc., within 30d, hide", "/terminals",
         {"within": "30", "within_unit": "d", "hide_synced": "true"}, None),
        ("monitor live rows, 5 loc., within 6h", "/terminals/rows",
         {"updated_within": "6h"}, None),
    ]
    # An open monitor's poll while nothing changed: the digest of the rows it shows → 204.
    shown = client.get("/terminals/rows", params={"updated_within": "6h"}).text
    digest = shown.split("digest=")[1].split('"')[0]
    cases.append(("monitor live poll, unchanged (204)", "/terminals/rows",
                  {"updated_within": "6h", "digest": digest}, None))
    worst = 0.0
    print(f"{'case':40} {'median ms':>10} {'p95 ms':>8}")
    for name, path, params, user in cases:
        headers = {"Authorization": f"Bearer {tokens[user]}"} if user else None
        median, p95 = measure(client, path, params, args.runs, headers)
        worst = max(worst, p95)
        print(f"{name:40} {median:10.1f} {p95:8.1f}")
    print(f"worst p95 {worst:.1f} ms (target < {TARGET_MS} ms): "
          f"{'met' if worst < TARGET_MS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
