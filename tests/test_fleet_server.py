"""Issue 12, the server's side of fleets: bulk enrollment, bulk broker accounts, the batch's
status rows, the ingest figures, and replicas sharing the ingestion on one real Mosquitto.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import secrets
import shutil
import tempfile
import threading
from collections import Counter
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from test_mqtt_master import require_mosquitto, tls_connect
from test_server_cli import RunningServer, assert_refused, cli
from waiting import wait_for

from batm_common.hostaddr import AddressError, ServerAddress
from batm_common.signing import b64url, sign_headers
from server.ca import ensure_certificates
from server.db.engine import open_database
from server.db.master import StatusHistory, TerminalStatus
from server.errors import ServiceError
from server.http.admin_api import create_admin_app
from server.http.gate import create_gate_app
from server.master.assignment import assign, parse_brokers
from server.master.broker import (
    Broker,
    BrokerSettings,
    autosave_seconds,
    max_connections,
    queued_messages,
)
from server.master.dynsec import TERMINAL_ROLE, password_hash, reconcile_dynsec, with_accounts
from server.master.ingest import SPLIT_AFTER, Incoming, Ingest
from server.master.ingest_stats import IngestStats, lag_bucket, parse_at, percentile_from_buckets
from server.master.link import MasterLink, ingest_filters, server_client_id
from server.master.options import INGEST_WINDOW_MS, add_master_run_options, master_options
from server.master.service import MasterService
from server.notify import Notifier
from server.pairing.authentication import Authenticator, SignedRequest
from server.pairing.enrollment import MAX_ENROLL, Enrollment
from server.pairing.registry import Registry
from server.pairing.requests import PairingRequests
from server.pairing.transactions import Transactions


def new_key() -> tuple[Ed25519PrivateKey, str]:
    key = Ed25519PrivateKey.generate()
    return key, b64url(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


@pytest.fixture
def tx(tmp_path):
    return Transactions(open_database(tmp_path))


# ---------------------------------------------------------------- enrollment


def test_enrolled_terminals_are_paired_with_their_keys_and_sign_their_check_in(tx):
    keys = {f"F{i:03d}": new_key() for i in range(3)}
    answer, accounts = Enrollment(tx).enroll(
        "B", [{"serial": s, "identity_key": pub} for s, (_k, pub) in keys.items()])
    assert answer == {"enrolled": 3, "accounts": 0} and accounts == {}
    states = {t["serial"]: t["state"] for t in Registry(tx).list_terminals()}
    assert states == dict.fromkeys(keys, "paired")
    key, _pub = keys["F001"]
    body = json.dumps({"version": 20240101}).encode()
    headers = sign_headers(key, "F001", "POST", "/api/v1/checkin", body)
    signed = SignedRequest(method="POST", path_with_query="/api/v1/checkin", body=body,
                           serial="F001", timestamp=headers["X-BATM-Timestamp"],
                           signature=headers["X-BATM-Signature"],
                           body_sha256=headers["X-BATM-Content-SHA256"],
                           nonce=headers["X-BATM-Nonce"])
    assert Authenticator(tx).checkin(signed, 20240101)["status"] == "paired"


def test_enrollment_never_replaces_a_paired_key(tx):
    _k, pub = new_key()
    Enrollment(tx).enroll("B", [{"serial": "F1", "identity_key": pub}])
    _k2, other = new_key()
    with pytest.raises(ServiceError) as refused:
        Enrollment(tx).enroll("B", [{"serial": "F1", "identity_key": other}])
    assert refused.value.status == 409 and "never replaces a key" in refused.value.message


def test_a_created_never_paired_terminal_may_be_enrolled(tx):
    Registry(tx).create_terminal("F9", "A", "hall")
    _k, pub = new_key()
    Enrollment(tx).enroll("B", [{"serial": "F9", "identity_key": pub}])
    terminal = Registry(tx).get_terminal("F9")
    assert terminal["state"] == "paired" and terminal["scenario"] == "A"


@pytest.mark.parametrize(("items", "says"), [
    ([], "non-empty list"),
    ("F1", "non-empty list"),
    ([{"serial": "bad serial", "identity_key": "x"}], "terminals[0]: the serial"),
    ([{"serial": "F1", "identity_key": "AAAA"}], "terminals[0]: identity_key must be"),
    ([{"serial": "F1", "identity_key": "%%%"}], "terminals[0]: identity_key must be"),
    ([{"serial": "F1", "identity_key": new_key()[1]},
      {"serial": "F1", "identity_key": new_key()[1]}], "listed more than once: F1"),
    ([{"serial": "F1", "identity_key": new_key()[1], "mqtt": {"password": "abc"}}],
     "terminals[0].mqtt: password must be"),
    ([{"serial": "F1", "identity_key": new_key()[1],
       "mqtt": {**password_hash("p"), "iterations": 0}}], "iterations must be"),
    ([{"serial": f"F{i}", "identity_key": "k"} for i in range(MAX_ENROLL + 1)],
     f"at most {MAX_ENROLL} per request"),
])
def test_bad_enrollments_are_refused_naming_the_entry_and_nothing_is_stored(tx, items, says):
    with pytest.raises(ServiceError) as refused:
        Enrollment(tx).enroll("B", items)
    assert refused.value.status == 400 and says in refused.value.message
    assert Registry(tx).list_terminals() == []


def test_an_enrollment_with_password_hashes_returns_the_accounts(tx):
    hashed = password_hash("secret")
    _answer, accounts = Enrollment(tx).enroll(
        "B", [{"serial": "F1", "identity_key": new_key()[1], "mqtt": hashed}])
    assert accounts == {"F1": hashed}


def test_bulk_accounts_become_bound_clients_in_the_terminals_role_and_revocation_still_wins():
    accounts = {"F1": password_hash("a"), "F2": password_hash("b")}
    data = with_accounts({"clients": [], "roles": []}, accounts)
    client = next(c for c in data["clients"] if c["username"] == "F1")
    assert client["clientid"] == "F1" and client["roles"] == [{"rolename": TERMINAL_ROLE}]
    assert data["roles"] == []  # no role per terminal: its topics are the ACL file's patterns
    reconciled, removed = reconcile_dynsec(data, "admin-pw", paired={"F1"})
    assert removed == ["F2"]
    assert {c["username"] for c in reconciled["clients"]} == {"batm:server", "F1"}


def test_the_broker_keeps_descriptors_for_itself():
    assert max_connections(262144) == 262144 - 256
    assert max_connections(100) == 64


# ---------------------------------------------------------------- ingest


def status(serial: str, **fields) -> Incoming:
    payload = {"online": True, "serial": serial, "version": 20240101, "state": "in_service",
               "screen": "in_service", "uptime": 1.0, "at": "2026-01-01T00:00:00.000Z"} | fields
    return Incoming(serial, "status", json.dumps(payload).encode())


def test_a_batch_keeps_the_latest_status_and_history_only_for_changes(tmp_path, database_url):
    sessions = open_database(tmp_path, database_url)
    Enrollment(Transactions(sessions)).enroll(
        "B", [{"serial": s, "identity_key": new_key()[1]} for s in ("T1", "T2")])
    ingest = Ingest(sessions)
    done = ingest.ingest([status("T1"), status("T1", uptime=2.0), status("T2"),
                          status("T1", screen="out_of_service"),
                          Incoming("T2", "status", b"{not json")])
    assert done.stored == {"status": 4} and done.refused == 1
    assert len(done.status_at) == 4
    ingest.ingest([status("T1", screen="out_of_service", uptime=9.5)])  # a heartbeat
    with sessions() as session:
        t1, t2 = session.get(TerminalStatus, "T1"), session.get(TerminalStatus, "T2")
        assert (t1.screen, t1.uptime, t1.rejected) == ("out_of_service", 9.5, 0)
        assert (t2.screen, t2.rejected) == ("in_service", 1)
        assert "not valid JSON" in t2.last_reject or "JSON" in t2.last_reject
        # T1: first status, then the screen change; T2: its first status
        history = session.query(StatusHistory).order_by(StatusHistory.id).all()
        assert [h.serial for h in history] == ["T1", "T2", "T1"]


def test_a_refused_status_of_a_terminal_without_a_row_counts_on_a_new_row(tmp_path, database_url):
    sessions = open_database(tmp_path, database_url)
    Enrollment(Transactions(sessions)).enroll("B", [{"serial": "T1",
                                                     "identity_key": new_key()[1]}])
    Ingest(sessions).ingest([status("T1", version="twenty")])
    with sessions() as session:
        row = session.get(TerminalStatus, "T1")
        assert row.rejected == 1 and "version must be int" in row.last_reject


def test_a_batch_updates_rows_of_every_shape_and_counts_refusals_on_existing_rows(
        tmp_path, database_url):
    """Existing rows are updated by key in one statement per shape of values (dialect.py's
    update_by_key: arrays on PostgreSQL): full statuses, an offline one, a refusal."""
    sessions = open_database(tmp_path, database_url)
    serials = ("T1", "T2", "T3")
    Enrollment(Transactions(sessions)).enroll(
        "B", [{"serial": s, "identity_key": new_key()[1]} for s in serials])
    ingest = Ingest(sessions)
    ingest.ingest([status(s) for s in serials])  # every terminal has its row now
    done = ingest.ingest([
        status("T1", uptime=5.0), Incoming("T2", "status", b'{"online": false}'),
        status("T3", version=True), status("T9"), status("T1", uptime=6.5, slot="b"),
        status("T3", state="maintenance", last_sync_error=None, vpn_handshake_age=3)])
    assert done.stored == {"status": 4} and done.refused == 2
    with sessions() as session:
        t1, t2, t3 = (session.get(TerminalStatus, s) for s in serials)
        assert (t1.uptime, t1.slot, t1.screen, t1.online) == (6.5, "b", "in_service", True)
        assert (t2.online, t2.screen, t2.uptime, t2.rejected) == (False, "in_service", 1.0, 0)
        assert (t3.state, t3.vpn_handshake_age, t3.rejected) == ("maintenance", 3, 1)
        assert "version must be int, got bool" in t3.last_reject
        assert session.get(TerminalStatus, "T9") is None  # not a terminal of this server
        changed = [h.serial for h in session.query(StatusHistory).order_by(StatusHistory.id)]
        assert changed == ["T1", "T2", "T3", "T2", "T1", "T3"]  # first rows, then changes


TRICKY_TEXT = ['say "hi"', "back\\slash\\", "{braces},comma", "NULL", "", " padded ",
               "ünïcødé ✓ 𝄞", "quote\" and \\\" together"]


def test_text_of_any_shape_is_stored_as_sent_by_the_batch_update(tmp_path, database_url):
    """PostgreSQL's batch statements take their arrays as text literals built by the server
    (dialect.array_literal): quotes, backslashes, braces, commas, the word NULL, empty and
    padded strings, any Unicode must come back exactly as sent."""
    sessions = open_database(tmp_path, database_url)
    serials = [f"T{i}" for i in range(len(TRICKY_TEXT))]
    Enrollment(Transactions(sessions)).enroll(
        "B", [{"serial": s, "identity_key": new_key()[1]} for s in serials])
    ingest = Ingest(sessions)
    ingest.ingest([status(s) for s in serials])  # rows exist: the next batch updates them
    done = ingest.ingest([status(s, last_sync_error=text, state=text, uptime=0.1 * i)
                          for i, (s, text) in enumerate(zip(serials, TRICKY_TEXT, strict=True))])
    assert done.stored == {"status": len(serials)} and done.refused == 0
    with sessions() as session:
        rows = [session.get(TerminalStatus, s) for s in serials]
        assert [r.last_sync_error for r in rows] == TRICKY_TEXT
        assert [r.state for r in rows] == TRICKY_TEXT
        assert [r.uptime for r in rows] == [0.1 * i for i in range(len(serials))]


@pytest.mark.parametrize(("fields", "says"), [
    ({"state": "\ud800"}, "state contains an unpaired surrogate"),
    ({"last_sync_error": "disk \udfff full"}, "last_sync_error contains an unpaired surrogate"),
    ({"uptime": float("nan")}, "uptime must be a finite number, got nan"),
    ({"vpn_handshake_age": float("-inf")}, "vpn_handshake_age must be a finite number"),
], ids=["surrogate", "surrogate-inside", "nan", "infinity"])
def test_a_status_no_database_can_store_is_refused_and_the_rest_of_the_batch_stored(
        tmp_path, database_url, fields, says):
    """The attack: a terminal (or a thief with its credentials) sends JSON that Python reads but
    no database driver writes — the \\ud800 escape, NaN. The batch used to fail as a whole and
    the ingest retries a failed batch until it is stored, so one message stopped every
    terminal's monitoring on that replica. It is refused like any bad field, and counted."""
    sessions = open_database(tmp_path, database_url)
    Enrollment(Transactions(sessions)).enroll(
        "B", [{"serial": s, "identity_key": new_key()[1]} for s in ("T1", "T2")])
    done = Ingest(sessions).ingest([status("T1", **fields), status("T2", uptime=7.0)])
    assert done.stored == {"status": 1} and done.refused == 1
    with sessions() as session:
        t1, t2 = session.get(TerminalStatus, "T1"), session.get(TerminalStatus, "T2")
        assert t1.rejected == 1 and says in t1.last_reject
        assert (t2.uptime, t2.rejected) == (7.0, 0)


@contextlib.contextmanager
def refusing_status_rows(sessions, state: str, errcode: str = "P0001"):
    """A trigger refusing every status row with this state, while in the block: a message the
    database refuses that the payload checks let through (PostgreSQL: with this SQLSTATE).
    Dropped after: a test's PostgreSQL database is emptied, not made anew, for the next."""
    def run(*statements: str) -> None:
        with sessions() as session, session.begin():
            for statement in statements:
                session.connection().exec_driver_sql(statement)

    with sessions() as session:
        sqlite = session.connection().dialect.name == "sqlite"
    if sqlite:
        run(*(f"CREATE TRIGGER refuse_{verb.lower()} BEFORE {verb} ON terminal_status "
              f"WHEN NEW.state = '{state}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
              for verb in ("INSERT", "UPDATE")))
        yield
        return
    run("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.state = '{state}' THEN RAISE EXCEPTION 'refused' USING ERRCODE = "
        f"'{errcode}'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON terminal_status "
        "FOR EACH ROW EXECUTE FUNCTION refuse()")
    try:
        yield
    finally:
        run("DROP TRIGGER IF EXISTS refuse ON terminal_status", "DROP FUNCTION refuse()")


def test_a_message_the_database_always_refuses_is_dropped_and_the_rest_of_its_batch_stored(
        tmp_path, database_url):
    """The ingest retries a batch until it is stored; a message no write ever accepts would
    have stopped the replica's ingestion. After SPLIT_AFTER failures the batch is stored a
    message at a time, and the one that keeps failing is dropped and counted."""
    sessions = open_database(tmp_path, database_url)
    Enrollment(Transactions(sessions)).enroll(
        "B", [{"serial": s, "identity_key": new_key()[1]} for s in ("T1", "T2", "T3")])
    waits: list[float] = []
    with refusing_status_rows(sessions, "poison"):
        done = Ingest(sessions).ingest_until_stored(
            [status("T1"), status("T2", state="poison"), status("T3", uptime=3.0)],
            waits.append)
    assert done.stored == {"status": 2} and done.refused == 1
    assert sum(waits) < 0.5  # a few short retries, not a back-off to the 2 s ceiling
    with sessions() as session:
        assert session.get(TerminalStatus, "T1").uptime == 1.0
        assert session.get(TerminalStatus, "T3").uptime == 3.0
        assert session.get(TerminalStatus, "T2") is None


@pytest.mark.processes
def test_a_batch_failing_because_the_database_is_away_is_retried_not_dropped(
        tmp_path, postgres_cluster):
    """The counterpart: an error meaning "the database cannot now" (here PostgreSQL's
    admin_shutdown, 57P01: what a restarting server answers) is retried however often it
    comes, and the batch is stored whole once it goes."""
    # PostgreSQL only: SQLite's own transient error, "locked", waits 5 s at each try.
    sessions = open_database(tmp_path, postgres_cluster.fresh())
    Enrollment(Transactions(sessions)).enroll(
        "B", [{"serial": s, "identity_key": new_key()[1]} for s in ("T1", "T2")])
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2 * SPLIT_AFTER:  # the database is back
            with sessions() as session, session.begin():
                session.connection().exec_driver_sql("DROP TRIGGER refuse ON terminal_status")

    with refusing_status_rows(sessions, "in_service", errcode="57P01"):
        done = Ingest(sessions).ingest_until_stored([status("T1"), status("T2")], wait)
    assert done.stored == {"status": 2} and done.refused == 0
    assert len(waits) == 2 * SPLIT_AFTER


def test_ingest_lag_percentiles_come_from_ten_percent_buckets():
    assert parse_at("2026-01-01T00:00:00.250Z") == pytest.approx(1767225600.25)
    assert parse_at("yesterday") is None and parse_at("2026-01-01T00:00:00") is None
    stats = IngestStats()
    lags_ms = [10.0] * 90 + [500.0] * 10
    stats.record({"status": 100}, 0, 0.01, [1000.0 - lag / 1000 for lag in lags_ms], 1000.0)
    buckets = dict(stats.snapshot()["status_lag_buckets"])
    assert 10.0 <= percentile_from_buckets(buckets, 0.5) < 11.0
    assert 500.0 <= percentile_from_buckets(buckets, 0.95) < 550.0
    assert lag_bucket(0.2) == 0
    assert stats.snapshot()["cpu_us_per_message"] == 100.0


# ---------------------------------------------------------------- replicas


def test_replicas_have_their_own_ids_and_shared_subscriptions():
    assert server_client_id(None) == "batm:master"
    assert server_client_id("r2") == "batm:master:r2"
    assert ingest_filters(None) == ["terminals/+/status", "terminals/+/events",
                                    "terminals/+/results"]
    assert all(f.startswith("$share/batm/terminals/+/") for f in ingest_filters("r2"))
    with pytest.raises(ValueError, match="replica name"):
        MasterLink.__new__(MasterLink).__init__(None, None, replica="a:b")  # type: ignore[arg-type]


@pytest.fixture
def broker(tmp_path):
    require_mosquitto()
    certs = ensure_certificates(tmp_path, ["127.0.0.1"])
    broker = Broker(BrokerSettings(tmp_path, ServerAddress("127.0.0.1", 0),
                                   certs.leaf_cert_path, certs.leaf_key_path),
                    paired=lambda: ["T1"])
    broker.prepare()
    broker.start()
    try:
        yield broker, certs
    finally:
        broker.stop()


def test_two_replicas_share_the_ingestion_each_message_stored_once(tmp_path, broker):
    mosquitto, certs = broker
    sessions = open_database(tmp_path)
    Enrollment(Transactions(sessions)).enroll("B", [{"serial": "T1",
                                                     "identity_key": new_key()[1]}])
    links = [MasterLink(mosquitto, Ingest(sessions), replica=name) for name in ("r1", "r2")]
    lost = {name: threading.Event() for name in ("r1", "r2")}
    for link in links:
        original = link.client.on_disconnect

        def noting(*args, _event=lost[link.replica], _original=original):
            _event.set()
            _original(*args)

        link.client.on_disconnect = noting
        link.start()
        assert link.wait_connected(10)
    try:
        password = secrets.token_urlsafe(32)
        links[0].grant("T1", password)
        # A terminal's credentials presenting a replica's id take nothing over.
        attacker, _rc, _gone = tls_connect("127.0.0.1", mosquitto.mqtt_port, certs.ca_cert_path,
                                           "T1", password, "batm:master:r1")
        attacker.disconnect()
        attacker.loop_stop()
        assert not lost["r1"].wait(1.0), "replica r1 was kicked by a terminal's credentials"
        terminal, rc, _gone = tls_connect("127.0.0.1", mosquitto.mqtt_port,
                                          certs.ca_cert_path, "T1", password, "T1")
        assert rc is not None and not rc.is_failure
        events = 200
        for i in range(events):
            payload = {"id": f"ev-{i}", "type": "fleet", "at": "2026-01-01T00:00:00Z"}
            terminal.publish("terminals/T1/events", json.dumps(payload), qos=1)
        wait_for(lambda: sum(link.stats.snapshot()["messages"] for link in links) >= events,
                   20, "the replicas did not store every event")
        shares = [link.stats.snapshot()["stored"].get("events", 0) for link in links]
        assert sum(shares) == events, shares  # each message went to one replica
        assert all(share > 0 for share in shares), shares  # and both took part
        terminal.disconnect()
        terminal.loop_stop()
    finally:
        for link in links:
            link.stop()


# ---------------------------------------------------------------- several brokers


def test_terminals_spread_evenly_over_the_brokers_and_keep_theirs_when_one_is_added():
    brokers = parse_brokers("192.0.2.1:8883, 192.0.2.2:8883,192.0.2.3:8883,192.0.2.4:8883")
    serials = [f"T{i:06d}" for i in range(50000)]
    first = {serial: assign(serial, brokers) for serial in serials}
    counts = Counter(first.values())
    assert all(abs(n - 12500) < 12500 * 0.03 for n in counts.values()), counts
    grown = [*brokers, ServerAddress("192.0.2.5", 8883)]
    moved = [s for s in serials if assign(s, grown) != first[s]]
    assert all(str(assign(s, grown)) == "192.0.2.5:8883" for s in moved)  # only to the new one
    assert abs(len(moved) - 10000) < 10000 * 0.05
    # every replica computes the same, whatever the order it lists them in
    assert all(assign(s, list(reversed(brokers))) == first[s] for s in serials[:1000])


@pytest.mark.parametrize(("text", "says"), [
    ("", "at least one"), ("192.0.2.1:8883,192.0.2.1:8883", "listed twice"),
    ("192.0.2.1:8883,not a host", "broker 'not a host'"),
])
def test_a_bad_broker_list_is_refused_naming_the_entry(text, says):
    with pytest.raises(AddressError, match=says):
        parse_brokers(text)


def test_the_gate_answers_the_assigned_broker_and_grants_only_on_its_own(tx):
    brokers = tuple(parse_brokers("192.0.2.1:8883,192.0.2.2:8883"))
    granted = []

    class Link:  # the broker side is tests/test_mqtt_master.py's; here: what was granted
        def grant(self, serial, password):
            granted.append(serial)

    master = MasterService(None, None, None, Link(), brokers=brokers)  # type: ignore[arg-type]
    mine = next(f"T{i}" for i in range(100) if assign(f"T{i}", list(brokers)) == brokers[0])
    theirs = next(f"T{i}" for i in range(100) if assign(f"T{i}", list(brokers)) == brokers[1])
    keys = {serial: new_key() for serial in (mine, theirs)}
    Enrollment(tx).enroll("B", [{"serial": s, "identity_key": pub}
                                for s, (_k, pub) in keys.items()])
    app = create_gate_app(PairingRequests(tx), Authenticator(tx), Notifier(), master=master)
    client = TestClient(app, base_url="https://testserver")

    def credentials(serial):
        body = json.dumps({"password": secrets.token_urlsafe(32)}).encode()
        headers = sign_headers(keys[serial][0], serial, "POST", "/api/v1/master/credentials",
                               body)
        return client.post("/api/v1/master/credentials", content=body, headers=headers)

    answer = credentials(mine)
    assert answer.status_code == 200 and answer.json()["broker"] == "192.0.2.1:8883"
    refused = credentials(theirs)
    assert refused.status_code == 503
    assert "assigned to the broker 192.0.2.2:8883" in refused.json()["message"]
    assert granted == [mine]


def test_an_enrollment_carrying_accounts_for_another_replicas_broker_is_refused_whole(tx):
    """A replica writes accounts only into its own broker: enrolled here, the other broker's
    terminals would hold credentials no broker knows."""
    brokers = tuple(parse_brokers("192.0.2.1:8883,192.0.2.2:8883"))
    added = []

    class Broker:
        def add_accounts(self, accounts):
            added.append(sorted(accounts))

    class Link:
        broker = Broker()

    master = MasterService(None, None, None, Link(), brokers=brokers)  # type: ignore[arg-type]
    app = create_admin_app(Registry(tx), PairingRequests(tx), master=master,
                           enrollment=Enrollment(tx))
    client = TestClient(app, base_url="http://admin")
    mine = next(f"F{i}" for i in range(100) if assign(f"F{i}", list(brokers)) == brokers[0])
    theirs = next(f"F{i}" for i in range(100) if assign(f"F{i}", list(brokers)) == brokers[1])

    def enroll(*serials: str, with_accounts: bool = True):
        return client.post("/api/v1/terminals/enroll", json={"scenario": "B", "terminals": [
            {"serial": s, "identity_key": new_key()[1],
             **({"mqtt": password_hash("pw")} if with_accounts else {})} for s in serials]})

    refused = enroll(mine, theirs)
    assert refused.status_code == 409, refused.text
    assert f"{theirs} → 192.0.2.2:8883" in refused.json()["message"]
    assert Registry(tx).paired_serials() == [] and added == []  # nothing stored
    assert enroll(mine).status_code == 201 and added == [[mine]]
    assert enroll(theirs, with_accounts=False).status_code == 201  # credentials asked later
    assert sorted(Registry(tx).paired_serials()) == sorted([mine, theirs])


# ---------------------------------------------------------------- the operator's command


@pytest.fixture
def short_dir():
    path = Path(tempfile.mkdtemp(prefix="batm-", dir="/tmp"))  # admin.sock: ≤ 107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_operator_enrolls_a_factory_list_with_batm_server(short_dir, tmp_path):
    data_dir = short_dir
    listing = tmp_path / "fleet.jsonl"
    lines = [{"serial": f"F{i}", "identity_key": new_key()[1]} for i in range(3)]
    lines[0]["mqtt"] = password_hash(secrets.token_urlsafe(32))
    listing.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    server = RunningServer(data_dir)
    try:
        done = cli(data_dir, "terminal", "enroll", str(listing))
        assert done.returncode == 0, done.stderr
        assert "enrolled 3 terminal(s)" in done.stdout
        listed = json.loads(cli(data_dir, "terminal", "list", "--json").stdout)
        assert {t["serial"]: t["state"] for t in listed} == dict.fromkeys(
            ("F0", "F1", "F2"), "paired")
        dynsec = json.loads((data_dir / "mosquitto" / "dynamic-security.json").read_text())
        assert "F0" in {c["username"] for c in dynsec["clients"]}  # the bulk account
        listing.write_text('{"serial": "F7", "identity_key": "x"}\n[1, 2]\n')
        assert_refused(cli(data_dir, "terminal", "enroll", str(listing)), 1, "line 2")
    finally:
        server.stop()
    listing.write_text(json.dumps({"serial": "F8", "identity_key": new_key()[1]}) + "\n")
    # Broker accounts go to the running broker: offline, enrollment is refused, not half done.
    assert_refused(cli(data_dir, "terminal", "enroll", str(listing)), 1,
                   "needs the running server")


def test_a_fleet_broker_writes_its_persistence_file_less_often():
    assert autosave_seconds(0) == autosave_seconds(999) == 1 and autosave_seconds(1999) == 1
    assert autosave_seconds(50000) == 50 and autosave_seconds(1000000) == 60


def test_the_servers_ingestion_may_fall_a_minute_of_statuses_behind_before_the_broker_drops():
    """At 5,000 statuses/s a fixed 10,000 was two seconds: a database pause lost statuses."""
    assert queued_messages(0) == queued_messages(1000) == 10_000
    assert queued_messages(50_000) == 300_000  # 60 s at one status per 10 s each


def test_status_history_older_than_the_retention_is_pruned(tmp_path, database_url):
    sessions = open_database(tmp_path, database_url)
    Enrollment(Transactions(sessions)).enroll("B", [{"serial": "T1",
                                                     "identity_key": new_key()[1]}])
    now = [datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)]
    ingest = Ingest(sessions, clock=lambda: now[0])
    ingest.ingest([status("T1", screen="a")])
    now[0] += datetime.timedelta(days=80)
    ingest.ingest([status("T1", screen="b")])
    now[0] += datetime.timedelta(days=20)  # the first change is 100 days old, the second 20
    assert ingest.prune_history(90) == 1
    with sessions() as session:
        assert [json.loads(h.status)["screen"] for h in session.query(StatusHistory)] == ["b"]
        assert session.get(TerminalStatus, "T1").screen == "b"  # the latest status stays


def test_the_connection_limit_opens_no_listener_of_its_own(broker):
    """max_connections is a listener's option: before the first `listener` line Mosquitto would
    open its default listener on 0.0.0.0:1883 too (found the hard way: 1883 was taken)."""
    mosquitto, _certs = broker
    lines = (mosquitto.dir / "mosquitto.conf").read_text().splitlines()
    first_listener = next(i for i, line in enumerate(lines) if line.startswith("listener "))
    limits = [i for i, line in enumerate(lines) if line.startswith("max_connections ")]
    assert limits and all(i > first_listener for i in limits)
    assert sum(line.startswith("listener ") for line in lines) == 2  # the server's, terminals'


@pytest.mark.parametrize(("value", "window"), [("0", 0.0), ("100", 100.0), ("2.5", 2.5)])
def test_the_ingest_window_is_an_option_of_run(value, window):
    parser = argparse.ArgumentParser()
    add_master_run_options(parser)
    assert master_options(parser.parse_args(["--ingest-window", value])).ingest_window_ms == window
    assert master_options(parser.parse_args([])).ingest_window_ms == INGEST_WINDOW_MS


def test_a_bad_ingest_window_is_refused_naming_the_value(short_dir):
    result = cli(short_dir, "run", "--ingest-window", "soon")
    assert_refused(result, 2, "'soon' is not a number of milliseconds")
