"""The status monitor (the seed's page): a row is red on a sync error, yellow when the terminal
needs an update — by the operator's own policy, the minimum version to pair, not a constant."""

from __future__ import annotations

import json

import pytest

from server.db.engine import open_database
from server.firmware.catalog import Catalog
from server.master.ingest import Incoming, Ingest
from server.master.monitoring import Monitoring
from server.pairing.registry import Registry
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
