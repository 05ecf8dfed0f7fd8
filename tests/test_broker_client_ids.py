"""Issue 13, item 1: no terminal's broker credentials can affect another client.

A real Mosquitto, configured by the real server code, and the server's own MQTT client. The
attacker holds terminal A's valid password and connects with somebody else's client id: terminal
B's serial, or the server's id with a persistent session. Mosquitto would hand the id over to the
newcomer and disconnect its owner; it must refuse (or rename) the newcomer instead. The tunnel
listener of scenario A (here on 127.0.0.2) is attacked as well: there the id is not replaced by
the username, so only the dynsec binding of every terminal to its own id protects it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading

import pytest
from test_mqtt_master import tls_connect

from batm_common.hostaddr import ServerAddress
from server.ca import ensure_certificates
from server.db.engine import open_database
from server.master.broker import Broker, BrokerSettings
from server.master.dynsec import SERVER_CLIENT_ID
from server.master.ingest import Ingest
from server.master.link import INGEST_CLIENT_ID, MasterLink

A, B = "T-ALICE", "T-BOB"
TUNNEL = "127.0.0.2"  # stands in for the server's tunnel address (any 127/8 address is local)


class Rig:
    def __init__(self, tmp_path, tunnel_host: str | None):
        self.certs = ensure_certificates(tmp_path, ["127.0.0.1", TUNNEL])
        self.broker = Broker(
            BrokerSettings(tmp_path, ServerAddress("127.0.0.1", 0), self.certs.leaf_cert_path,
                           self.certs.leaf_key_path, tunnel_host=tunnel_host),
            paired=lambda: [A, B])
        self.broker.prepare()
        self.broker.start()
        self.link = MasterLink(self.broker, Ingest(open_database(tmp_path)))
        self.server_lost = threading.Event()  # the server's own client was disconnected
        original = self.link.client.on_disconnect

        def noting(*args):
            self.server_lost.set()
            original(*args)

        self.link.client.on_disconnect = noting
        self.link.start()
        assert self.link.wait_connected(10), "the server's client did not connect"
        self.listener = "127.0.0.1"
        self.passwords = {A: secrets.token_urlsafe(32), B: secrets.token_urlsafe(32)}
        for serial, password in self.passwords.items():
            self.link.grant(serial, password)

    def connect(self, username: str, client_id: str, host: str = "127.0.0.1"):
        """(client, CONNACK reason code or None, disconnected event); a persistent session."""
        return tls_connect(host, self.broker.mqtt_port, self.certs.ca_cert_path, username,
                           self.passwords[username], client_id, clean_session=False)

    def stop(self) -> None:
        self.link.stop()
        self.broker.stop()


# (the server's VPN tunnel address or None, the listener attacked)
SERVERS = {"direct": (None, "127.0.0.1"), "vpn-rig-listener": (TUNNEL, "127.0.0.1"),
           "vpn-tunnel-listener": (TUNNEL, TUNNEL)}


@pytest.fixture(params=list(SERVERS))
def rig(tmp_path, request):
    if shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"):
        pytest.fail("mosquitto is not installed (Debian package 'mosquitto')")
    tunnel_host, listener = SERVERS[request.param]
    rig = Rig(tmp_path, tunnel_host)
    rig.listener = listener
    try:
        yield rig
    finally:
        rig.stop()


def close(client) -> None:
    client.disconnect()
    client.loop_stop()


def test_terminal_a_credentials_with_b_client_id_do_not_disconnect_b(rig):
    listener = rig.listener
    victim, rc, victim_lost = rig.connect(B, B, host=listener)
    assert rc is not None and not rc.is_failure, rc
    for _ in range(3):
        attacker, _rc, _lost = rig.connect(A, B, host=listener)  # returns after the CONNACK
        close(attacker)
    assert not victim_lost.wait(1.0), "terminal B was disconnected by A's credentials"
    close(victim)


def test_terminal_credentials_with_the_server_client_id_do_not_kick_the_server(rig):
    listener = rig.listener
    ingest = rig.link.ingest_connection
    sessions = ingest.sessions
    for client_id in (SERVER_CLIENT_ID, INGEST_CLIENT_ID, "batm-server"):
        attacker, _rc, _lost = rig.connect(A, client_id, host=listener)  # after the CONNACK
        close(attacker)
    assert not rig.server_lost.wait(1.0), "the server's client was kicked by a terminal's id"
    assert rig.link.connected.is_set()
    assert ingest.sessions == sessions and ingest.subscribed.is_set(), \
        "the server's ingest connection was kicked by a terminal's id"


def test_a_terminal_still_connects_with_its_own_id(rig):
    client, rc, _lost = rig.connect(A, A, host=rig.listener)
    assert rc is not None and not rc.is_failure, rc
    close(client)
