"""The status monitor (the seed's page): a row is red on a sync error, yellow when the terminal
needs an update — by the operator's own policy, the minimum version to pair, not a constant."""

from __future__ import annotations

import json
import threading

import pytest
from fastapi.testclient import TestClient
from waiting import wait_for

from server.db.engine import open_database
from server.firmware.catalog import Catalog
from server.http.admin_api import create_admin_app
from server.master.ingest import Incoming, Ingest
from server.master.monitoring import Monitoring
from server.master.service import MasterService
from server.notify import Notifier, status_topic
from server.pairing.registry import Registry
from server.pairing.requests import PairingRequests
from server.pairing.transactions import Transactions


def report(version: int, **fields) -> Incoming:
    return Incoming(fields.pop("serial"), "status",
                    json.dumps({"online": True, "version": version, **fields}).encode())


@pytest.fixture
def world(tmp_path, database_url):
    sessions = open_database(tmp_path, database_url)
    registry = Registry(Transactions(sessions))
    for serial in ("OLD", "NEW", "BROKEN"):
        registry.create_terminal(serial, "B", None)
    Ingest(sessions).ingest([
        report(20230601, serial="OLD"),
        report(20240301, serial="NEW"),
        report(20230601, serial="BROKEN", last_sync_error="gate unreachable"),
    ])
    return Monitoring(sessions), Catalog(sessions, tmp_path)


def highlights(monitoring: Monitoring) -> dict[str, str | None]:
    return {row["serial"]: row["highlight"] for row in monitoring.statuses()}


def test_by_default_terminals_older_than_20230801_need_an_update(world):
    monitoring, _catalog = world
    assert highlights(monitoring) == {"BROKEN": "red", "NEW": None, "OLD": "yellow"}


def test_raising_the_minimum_version_makes_more_terminals_need_an_update(world):
    monitoring, catalog = world
    catalog.set_min_pair_version(20240601)
    assert highlights(monitoring) == {"BROKEN": "red", "NEW": "yellow", "OLD": "yellow"}
    assert monitoring.status("NEW")["highlight"] == "yellow"


def test_lowering_it_clears_yellow_but_a_sync_error_stays_red(world):
    monitoring, catalog = world
    catalog.set_min_pair_version(20190101)
    assert highlights(monitoring) == {"BROKEN": "red", "NEW": None, "OLD": None}


def test_a_refused_message_ends_the_operators_wait_for_the_status(tmp_path):
    """The status long-poll ends when the row changes, not only when a status arrives: a
    refused message counted on it is news for the operator too (before, the wait ran on until
    the next status or its end)."""
    sessions = open_database(tmp_path)
    transactions = Transactions(sessions)
    Registry(transactions).create_terminal("T1", "B", None)
    notifier = Notifier()
    ingest = Ingest(sessions, notifier.notify)
    ingest.ingest([report(20240301, serial="T1")])
    monitoring = Monitoring(sessions)
    master = MasterService(monitoring, None, None, None)  # type: ignore[arg-type]
    client = TestClient(create_admin_app(Registry(transactions), PairingRequests(transactions),
                                         master=master, notifier=notifier),
                        base_url="http://admin")
    after = monitoring.status("T1")["received_at"]
    answers: list[dict] = []
    waiting = threading.Thread(target=lambda: answers.append(client.get(
        f"/api/v1/terminals/T1/status/wait?after={after}&wait=300").json()), daemon=True)
    waiting.start()
    wait_for(lambda: notifier.listener_count(status_topic("T1")) == 1, 10, "the wait to start")
    assert ingest.ingest([Incoming("T1", "status", b"not json")]).refused == 1
    waiting.join(20)  # a bound for a broken build, far under the wait's 300 s
    assert not waiting.is_alive(), "the refusal did not end the wait"
    assert answers[0]["rejected"] == 1 and answers[0]["received_at"] == after
