"""The server's firmware side: catalog, upgrade graph, upgrade_required hellos, Range downloads."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from firmware_updater.manifest import VersionRange
from firmware_updater.testing import (
    assemble,
    hostile_tar,
    make_bundle,
    make_key,
    make_tree,
    resign,
)
from server.db.engine import open_database
from server.db.terminals import Terminal
from server.errors import ServiceError
from server.firmware.catalog import Bundle, Catalog, CatalogError, copy_keys, plan
from server.firmware.gate import UpgradeGate
from server.http.bundle_download import install_bundle_download, parse_range
from server.http.error_handlers import install_error_handlers
from server.pairing.registry import Registry
from server.pairing.requests import PairingRequests
from server.pairing.transactions import Transactions

MIN = 20230801


def fake(id_: int, version: int, ranges: str) -> Bundle:
    return Bundle(id_, version, ("rpi4",), tuple(VersionRange.parse(r) for r in ranges.split()),
                  1, "0" * 64, Path(f"/x/{id_}"))


def test_plan_fewest_steps_then_highest_version() -> None:
    bundles = [fake(1, 20210315, "-20190130"), fake(2, MIN, "20190131-20230731"),
               fake(3, 20220101, "-20190130"), fake(4, 20230901, "20220101")]
    assert plan(bundles, MIN, MIN) == []
    assert [b.id for b in plan(bundles, 20210601, MIN)] == [2]
    # archaic: two steps either way; the highest first step wins the tie
    assert [b.id for b in plan(bundles, 20190130, MIN)] == [3, 4]
    assert plan(bundles, 20190130, MIN, hardware="rpi3") is None
    assert plan([fake(1, 20210315, "-20190130")], 20190130, MIN) is None


@pytest.fixture()
def world(tmp_path: Path, database_url):
    data = tmp_path / "data"
    data.mkdir()
    key = make_key(tmp_path, "sim")
    copy_keys(sorted((tmp_path / "trusted").glob("*.pub")), data)
    sessions = open_database(data, database_url)
    catalog = Catalog(sessions, data)
    registry = Registry(Transactions(sessions))
    for version, ranges in ((20210315, "-20190130"), (MIN, "20190131-20230731")):
        src = make_tree(tmp_path / f"src{version}", version, big=3000)
        make_bundle(tmp_path / f"{version}.fw", src, [key], version=version, install_from=ranges)
        catalog.add(tmp_path / f"{version}.fw")
    return tmp_path, data, catalog, registry, key


def test_add_verifies_the_copy_and_refuses_bad_bundles(world) -> None:
    tmp, data, catalog, _registry, key = world
    assert [b.version for b in catalog.bundles()] == [20210315, MIN]
    with pytest.raises(CatalogError, match="already in the catalog"):
        catalog.add(tmp / f"{MIN}.fw")
    stranger = make_key(tmp / "other", "stranger", trusted=False)
    src = make_tree(tmp / "src-x", 20240101, big=3000)
    make_bundle(tmp / "x.fw", src, [stranger], version=20240101)
    with pytest.raises(CatalogError, match="not signed by a trusted key"):
        catalog.add(tmp / "x.fw")
    make_bundle(tmp / "u.fw", src, [], version=20240101)
    with pytest.raises(CatalogError, match="unsigned"):
        catalog.add(tmp / "u.fw")
    make_bundle(tmp / "t.fw", src, [key], version=20240101)
    raw = bytearray((tmp / "t.fw").read_bytes())
    raw[-600] ^= 1
    (tmp / "t.fw").write_bytes(bytes(raw))
    with pytest.raises(CatalogError, match="payload does not match"):
        catalog.add(tmp / "t.fw")
    assert len(catalog.bundles()) == 2
    assert sorted(p.name for p in (data / "firmware").iterdir()) == sorted(
        b.path.name for b in catalog.bundles())  # nothing left behind


HOSTILE = ("dotdot", "nested", "absolute", "symlink", "hardlink", "chardev", "blockdev", "fifo",
           "manifest", "garbage")


@pytest.mark.parametrize("kind", HOSTILE)
def test_add_refuses_signed_bundles_whose_payload_every_terminal_refuses(world, kind) -> None:
    """Issue 13, item 8: the catalog accepted them (validly signed), and offered them."""
    tmp, data, catalog, _registry, key = world
    payload = b"not a tar archive at all " * 100 if kind == "garbage" else hostile_tar(kind)
    assemble(tmp / f"{kind}.fw", payload, [key], version=20240101, install_from="20230801-")
    with pytest.raises(CatalogError, match=f"{kind}.fw: "):
        catalog.add(tmp / f"{kind}.fw")
    assert [b.version for b in catalog.bundles()] == [20210315, MIN]
    assert not [p for p in (data / "firmware").iterdir() if p.name.startswith(".add-")]


def test_hello_offers_the_next_step_only(world) -> None:
    _tmp, _data, catalog, registry, _key = world
    gate = UpgradeGate(catalog._sessions, catalog)
    registry.create_terminal("T1", "B", None)
    assert gate.hello("NOPE", 20190130, "rpi4") is None  # unknown: the pairing path says 404
    assert gate.hello("T1", MIN, "rpi4") is None
    first = gate.hello("T1", 20190130, "rpi4")
    assert first["status"] == "upgrade_required" and first["min_version"] == MIN
    assert (first["step"], first["steps"], first["next"]["version"]) == (1, 2, 20210315)
    assert first["next"]["url"].startswith("/api/v1/firmware/")
    second = gate.hello("T1", 20210315, "rpi4")
    assert (second["step"], second["steps"], second["next"]["version"]) == (2, 2, MIN)
    assert gate.upgrading()[0]["completed_steps"] == 1
    assert gate.hello("T1", MIN, "rpi4") is None
    assert gate.upgrading() == []


def test_concurrency_limit_and_no_path(world) -> None:
    _tmp, _data, catalog, registry, _key = world
    gate = UpgradeGate(catalog._sessions, catalog, max_concurrent=1)
    for serial in ("T1", "T2"):
        registry.create_terminal(serial, "B", None)
    assert gate.hello("T1", 20210601, "rpi4")["next"]["version"] == MIN
    busy = gate.hello("T2", 20210601, "rpi4")
    assert busy["next"] is None and busy["retry_after"] > 0 and "upgrading 1" in busy["message"]
    assert gate.hello("T1", 20210601, "rpi4")["next"] is not None  # its own slot: offered again
    assert gate.hello("T1", MIN, "rpi4") is None  # done: the slot is free
    assert gate.hello("T2", 20210601, "rpi4")["next"]["version"] == MIN
    none = gate.hello("T2", 20210601, "rpi3")
    assert none["next"] is None and "operator must add firmware" in none["message"]


def test_unauthenticated_hellos_cannot_take_every_upgrade_slot(world) -> None:
    """Issue 13, item 2: a stranger who knows serials says hello with a low version for each."""
    _tmp, _data, catalog, registry, _key = world
    gate = UpgradeGate(catalog._sessions, catalog, max_concurrent=2)
    for serial in ("T1", "T2", "T3", "T-PAIRED"):
        registry.create_terminal(serial, "B", None)
    with catalog._sessions() as session, session.begin():  # as a signed check-in records it
        session.get(Terminal, "T-PAIRED").version = MIN
    # A paired, current terminal never goes back: a hello saying so gets no slot.
    regressed = gate.hello("T-PAIRED", 20190130, "rpi4", peer="192.0.2.66")
    assert regressed["next"] is None and "never goes back" in regressed["message"]
    # One address holds at most half the slots.
    assert gate.hello("T1", 20190130, "rpi4", peer="192.0.2.66")["next"] is not None
    crowded = gate.hello("T2", 20190130, "rpi4", peer="192.0.2.66")
    assert crowded["next"] is None and "at this address" in crowded["message"]
    # The genuine old terminal elsewhere still gets its turn.
    assert gate.hello("T3", 20210601, "rpi4", peer="192.0.2.10")["next"]["version"] == MIN


def test_download_needs_a_slot_and_honours_range(world) -> None:
    _tmp, _data, catalog, registry, _key = world
    gate = UpgradeGate(catalog._sessions, catalog)
    app = FastAPI()
    install_error_handlers(app)
    install_bundle_download(app, gate)
    registry.create_terminal("T1", "B", None)
    registry.create_terminal("T2", "B", None)
    offer = gate.hello("T1", 20210601, "rpi4")["next"]
    client = TestClient(app)
    half = client.get(offer["url"], headers={"X-BATM-Serial": "T1",
                                             "Range": f"bytes=0-{offer['size'] // 2 - 1}"})
    assert half.status_code == 206
    assert gate.upgrading()[0]["percent"] in (49, 50), "the console's progress of the download"
    whole = client.get(offer["url"], headers={"X-BATM-Serial": "T1"})
    assert whole.status_code == 200 and len(whole.content) == offer["size"]
    assert gate.upgrading()[0]["percent"] == 100
    assert hashlib.sha256(whole.content).hexdigest() == offer["sha256"]
    part = client.get(offer["url"], headers={"X-BATM-Serial": "T1", "Range": "bytes=100-"})
    assert part.status_code == 206 and part.content == whole.content[100:]
    assert part.headers["content-range"] == f"bytes 100-{offer['size'] - 1}/{offer['size']}"
    bad = client.get(offer["url"], headers={"X-BATM-Serial": "T1",
                                            "Range": f"bytes={offer['size']}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{offer['size']}"
    assert client.get(offer["url"], headers={"X-BATM-Serial": "T2"}).status_code == 403
    assert client.get(offer["url"]).status_code == 403
    assert client.get("/api/v1/firmware/999/bundle",
                      headers={"X-BATM-Serial": "T1"}).status_code == 404


def test_parse_range() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-4", 10) == (2, 4)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=5-100", 10) == (5, 9)
    for bad in ("bytes=10-", "bytes=5-2", "bytes=-", "items=1-2", "bytes=1-2,4-5"):
        with pytest.raises(ServiceError):
            parse_range(bad, 10)


def test_approve_refuses_a_terminal_below_the_minimum(world) -> None:
    _tmp, _data, catalog, registry, _key = world
    from batm_common import pairing_code
    from batm_common.clock import utcnow
    from server.db.terminals import PairingRequest

    registry.create_terminal("T1", "B", None)
    with catalog._sessions() as session, session.begin():
        session.add(PairingRequest(
            request_id="r1", serial="T1", identity_key=b"k" * 32, commitment="0" * 64,
            server_nonce=b"n" * 32, code="ABCD-1234", version=20210601, hardware="rpi4",
            created_at=utcnow(), last_poll=utcnow(), state="pending"))
    requests = PairingRequests(Transactions(catalog._sessions))
    with pytest.raises(ServiceError, match="older than the minimum version to pair"):
        requests.approve("T1", "ABCD-1234")
    assert requests.list_pairing_requests()[0]["version"] == 20210601
    catalog.set_min_pair_version(20190101)
    assert requests.approve("T1", pairing_code.normalize("ABCD-1234"))["state"] == "paired"


def test_cli_firmware_commands(world) -> None:
    tmp, data, _catalog, _registry, key = world

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "server.cli", "firmware", *args,
                               "--data-dir", str(data)], capture_output=True, text=True,
                              timeout=60)

    listed = cli("list", "--json")
    assert listed.returncode == 0 and '"min_pair_version": 20230801' in listed.stdout
    assert cli("policy", "--min-pair-version", "20240101").stdout.strip().endswith("20240101")
    bad = cli("policy", "--min-pair-version", "2024")
    assert bad.returncode == 2 and "YYYYMMDD" in bad.stderr
    missing = cli("add", str(tmp / "nope.fw"))
    assert missing.returncode == 1 and "no such bundle file" in missing.stderr
    (tmp / "junk.fw").write_bytes(b"not a bundle at all")
    junk = cli("add", str(tmp / "junk.fw"))
    assert junk.returncode == 1 and "bad magic" in junk.stderr and "Traceback" not in junk.stderr
    src = make_tree(tmp / "src-new", 20240201, big=3000)
    make_bundle(tmp / "n.fw", src, [], version=20240201)
    resign(tmp / "n.fw", [key])
    added = cli("add", str(tmp / "n.fw"))
    assert added.returncode == 0 and "version 20240201" in added.stdout, added.stderr
