"""Revocation on the real broker: an unpair disables the terminal's MQTT user (master/link.py,
`revoke`); the disabled user is refused, replaced by a re-grant, removed by the next start.

A real Mosquitto configured by the real server code and the server's own MQTT client; the
terminals are paho clients on the TLS listener.
"""

from __future__ import annotations

import datetime
import json
import logging
import secrets
import time

import pytest
from test_mqtt_master import require_mosquitto, tls_connect
from waiting import wait_for

from batm_common.hostaddr import ServerAddress
from server.ca import ensure_certificates
from server.db.engine import open_database
from server.db.terminals import Terminal
from server.master.accounts import BrokerAccounts
from server.master.broker import DYNSEC_FILE, Broker, BrokerSettings
from server.master.ingest import Ingest
from server.master.link import MasterLink
from server.notify import session_topic

A, B = "T-ALICE", "T-BOB"
REFUSED = (134, 135)  # CONNACK: bad user name or password / not authorized


class Rig:
    def __init__(self, tmp_path):
        self.paired = {A, B}
        self.certs = ensure_certificates(tmp_path, ["127.0.0.1"])
        self.broker = Broker(
            BrokerSettings(tmp_path, ServerAddress("127.0.0.1", 0), self.certs.leaf_cert_path,
                           self.certs.leaf_key_path),
            paired=lambda: set(self.paired))
        self.broker.prepare()
        self.broker.start()
        self.link = MasterLink(self.broker, Ingest(open_database(tmp_path)))
        self.link.start()
        assert self.link.wait_connected(10), "the server's client did not connect"
        self.clients = []

    def connect(self, serial: str, password: str):
        """(CONNACK reason code or None, event set when the session ends)."""
        client, rc, lost = tls_connect("127.0.0.1", self.broker.mqtt_port,
                                       self.certs.ca_cert_path, serial, password, serial)
        self.clients.append(client)
        return rc, lost

    def dynsec_file(self) -> dict:
        return json.loads((self.broker.dir / DYNSEC_FILE).read_text())

    def stop(self) -> None:
        for client in self.clients:
            client.disconnect()
            client.loop_stop()
        self.link.stop()
        self.broker.stop()


@pytest.fixture(name="rig")
def broker_rig(tmp_path):
    """A real broker with the server's link to it (tests/test_broker_topic_access.py too)."""
    require_mosquitto()
    rig = Rig(tmp_path)
    try:
        yield rig
    finally:
        rig.stop()


def test_a_revoked_user_is_cut_refused_regranted_and_removed_at_the_next_start(rig):
    old, other = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    rig.link.grant(A, old)
    rig.link.grant(B, other)
    rc, a_lost = rig.connect(A, old)
    assert rc is not None and not rc.is_failure
    rc, b_lost = rig.connect(B, other)
    assert rc is not None and not rc.is_failure

    assert rig.link.revoke(A)
    assert a_lost.wait(5), "the revoked terminal's session was not cut"
    rc, _ = rig.connect(A, old)
    assert rc is not None and rc.value in REFUSED, f"a disabled user connected: {rc}"
    clients = {c["username"]: c for c in rig.dynsec_file()["clients"]}
    assert clients[A].get("disabled") is True  # what the plugin saved: a restart keeps it

    # A re-pairing: the disabled user is replaced; the new password works, the old one not.
    new = secrets.token_urlsafe(32)
    rig.link.grant(A, new)
    rc, _ = rig.connect(A, old)
    assert rc is not None and rc.value in REFUSED, f"the old password connected: {rc}"
    rc, a_lost = rig.connect(A, new)
    assert rc is not None and not rc.is_failure, f"the new password was refused: {rc}"
    assert not b_lost.is_set(), "another terminal's session was cut"

    # Unpaired for good: the next start removes the disabled user.
    assert rig.link.revoke(A)
    assert a_lost.wait(5)
    rig.paired.discard(A)
    rig.broker.restart()
    data = rig.dynsec_file()
    assert A not in {c["username"] for c in data["clients"]}
    assert B in {c["username"] for c in data["clients"]}
    rc, _ = rig.connect(A, new)
    assert rc is not None and rc.value in REFUSED, f"a removed user connected: {rc}"


def test_an_unpair_for_another_brokers_terminal_does_not_log_a_revocation(rig, caplog):
    """With several brokers, the replica handling an unpair asks its own broker too, which
    holds no account for a terminal of another broker: nothing was revoked here, and the log
    must not say it was (the owner's replica logs the revocation)."""
    rig.link.grant(A, secrets.token_urlsafe(32))
    with caplog.at_level(logging.INFO, logger="batm-server.master"):
        assert rig.link.revoke("T-ELSEWHERE")
        assert rig.link.revoke(A)
    revoked = [r.getMessage() for r in caplog.records if "revoked" in r.getMessage()]
    assert revoked == [f"master: MQTT access of {A} revoked (session closed)"]


def test_a_restarted_server_knows_which_pairing_an_account_was_granted_for(rig, tmp_path):
    """The server was down while the terminal was unpaired and paired again (a new key): its
    broker still holds the old pairing's user, and the database says "paired". The user's text
    name records the pairing it was granted for, so the restarted server's first sweep revokes
    it instead of adopting it as current."""
    sessions = open_database(tmp_path)
    first = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    with sessions() as session, session.begin():
        for serial in (A, B):
            session.add(Terminal(serial=serial, scenario="B", state="paired", paired_at=first,
                                 created_at=first))
    before = BrokerAccounts(sessions, rig.link)
    old, other = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    before.grant(A, old)
    before.grant(B, other)
    rc, a_lost = rig.connect(A, old)
    assert rc is not None and not rc.is_failure

    with sessions() as session, session.begin():  # meanwhile: A unpaired and paired again
        session.get(Terminal, A).paired_at = first + datetime.timedelta(hours=1)
    after = BrokerAccounts(sessions, rig.link)  # the restarted server's
    after.start()
    try:
        wait_for(lambda: after.sweeps >= 1, what="the first sweep")
        assert a_lost.is_set(), "the old pairing's session lives on"
        rc, _ = rig.connect(A, old)
        assert rc is not None and rc.value in REFUSED
        rc, _ = rig.connect(B, other)  # granted for B's current pairing: kept
        assert rc is not None and not rc.is_failure
    finally:
        after.stop()


def test_a_file_the_broker_left_truncated_is_restored_from_the_last_whole_copy(rig, tmp_path):
    """Debian's Mosquitto 2.0.11 rewrites its accounts file in place: killed mid-save, it
    leaves it cut short. The next start restores the copy the server last saw whole, so the
    fleet keeps its credentials instead of all asking for new ones at once."""
    sessions = open_database(tmp_path)
    now = datetime.datetime.now(datetime.UTC)
    with sessions() as session, session.begin():
        session.add(Terminal(serial=A, scenario="B", state="paired", paired_at=now,
                             created_at=now))
    accounts = BrokerAccounts(sessions, rig.link)
    password = secrets.token_urlsafe(32)
    accounts.grant(A, password)
    accounts.start()
    try:
        wait_for(lambda: accounts.sweeps >= 1, what="a sweep (it snapshots the file)")
    finally:
        accounts.stop()
    rig.broker.stop()
    path = rig.broker.dir / DYNSEC_FILE
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # the save the kill interrupted

    rig.broker.start()
    rc, _ = rig.connect(A, password)
    assert rc is not None and not rc.is_failure, "the terminal lost its credentials"
    assert list(rig.broker.dir.glob(f"{DYNSEC_FILE}.corrupt-*")), "the cut file was not kept"


def test_wake_ups_more_often_than_the_sweep_period_do_not_put_the_sweep_off(rig, tmp_path):
    """The sweep is the safety net for wake-ups that never came: a steady stream of other
    terminals' wake-ups (a busy fleet unpairing now and then) must not postpone it for ever."""
    sessions = open_database(tmp_path)
    accounts = BrokerAccounts(sessions, rig.link, sweep_every=0.4)
    accounts.start()
    try:
        wait_for(lambda: accounts.sweeps >= 1, what="the first sweep")
        swept = accounts.sweeps
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # a wake-up every 50 ms, far more than the period
            accounts.follow(session_topic("NOT-HERE"))
            time.sleep(0.05)
        assert accounts.sweeps >= swept + 2, "the wake-ups kept the sweep from running"
    finally:
        accounts.stop()
