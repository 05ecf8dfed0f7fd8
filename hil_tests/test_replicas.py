"""The server on PostgreSQL, and two server replicas on one database (issue 12), on the rig.

A rig whose server runs on PostgreSQL walks the pairing flow of test_pairing. A rig with two
replicas (`batm-sim up --database postgresql --replicas 2`: one database, two `batm-server run`
with one identity) shows that a terminal long-polling replica 1 is approved through replica 2
and reaches in_service at once: replica 2's approval wakes replica 1's long-poll through
PostgreSQL's LISTEN/NOTIFY. Without the wake-up, the terminal's poll would answer only at the
end of its wait (agent LONG_POLL_SECONDS, 25 s). How fast against one replica: bench/
pairing_latency.py --database postgresql --replicas 2.
"""

from __future__ import annotations

import datetime
import time

import pytest
from sqlalchemy import create_engine, text

from agent.gate_client import LONG_POLL_SECONDS
from hil_tests import test_pairing
from hil_tests.rig.drivers.server import ServerDriver
from hil_tests.rig.target import Target

TIMEOUT = 30.0
# Approval → in_service when woken is about a second here; unwoken it is what is left of a
# 25 s poll that started just before the approval. The test approves within RECENT of the
# poll's start, so an unwoken terminal would need more than LONG_POLL_SECONDS - RECENT.
RECENT = 8.0
WOKEN = LONG_POLL_SECONDS - RECENT


@pytest.mark.fresh_rig(database="postgresql")
def test_a_terminal_pairs_with_a_server_on_postgresql(target: Target) -> None:
    assert target.rig.server.database and target.rig.server.database.startswith("postgresql")
    test_pairing.test_never_paired_terminal_pairs(target)


def last_poll(database: str, serial: str) -> datetime.datetime | None:
    """When the terminal's open pairing request last polled (the gate stamps every poll)."""
    engine = create_engine(database)
    try:
        with engine.connect() as connection:
            value = connection.execute(text(
                "SELECT max(last_poll) FROM pairing_requests WHERE serial = :serial"),
                {"serial": serial}).scalar()
    finally:
        engine.dispose()
    return None if value is None else value.replace(tzinfo=datetime.UTC)


@pytest.mark.fresh_rig(database="postgresql", replicas=2)
def test_a_terminal_polling_replica_1_is_approved_through_replica_2(target: Target) -> None:
    t = target
    [replica] = t.rig.server.replicas
    second = ServerDriver(replica, t.trace)
    assert t.gate == t.rig.server.gate_address != replica.gate  # the terminal polls replica 1

    second.create_terminal(t.serial, "B")  # one database: replica 1 knows it too
    t.console.set_server(t.gate)
    code = t.console.wait_for_screen("pairing_code", TIMEOUT)["pairing_code"]
    request = second.wait_for_pairing_request(t.serial, TIMEOUT)
    assert request["code"] == code

    polled = last_poll(t.rig.server.database, t.serial)
    assert polled is not None
    approving = time.monotonic()
    since_poll = (datetime.datetime.now(datetime.UTC) - polled).total_seconds()
    second.approve(t.serial, code)
    t.console.wait_for_screen("in_service", TIMEOUT)
    elapsed = time.monotonic() - approving
    assert since_poll < RECENT, f"the terminal's poll started {since_poll:.1f}s before approval"
    assert elapsed < WOKEN, (
        f"approve (replica 2) → in_service took {elapsed:.1f}s: replica 1's long-poll was "
        "not woken, it ran out")
    assert t.server.terminal(t.serial)["state"] == "paired"
    assert second.terminal(t.serial)["state"] == "paired"
