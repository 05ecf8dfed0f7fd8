"""Several server processes on one PostgreSQL (issue 12): a terminal may reach any replica's gate.

Two BatmServers (each in its own thread and asyncio loop, its own data dir, broker and admin
socket, the same certificates, as replicas behind a load balancer have) share one database. A
long-poll on one is woken by the operator's action on the other (LISTEN/NOTIFY), and what the
gate remembers against abuse — signatures it accepted, hello rates — holds across them: a
signed request replayed through the other replica is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import ssl
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from test_mqtt_master import require_mosquitto, tls_connect
from test_server_gate import (
    LONG_WAIT,
    PROMPT,
    FakeTerminal,
    approve,
    assert_error,
    create,
    handshake_spki,
    long_poll,
    pair,
    serving,
)
from wireguard_tools import WireguardKey

from batm_common.hostaddr import ServerAddress
from batm_common.signing import sign_headers
from server.app import BatmServer
from server.ca import CA_CERT, CA_KEY, LEAF_CERT, LEAF_KEY
from server.master.assignment import assign
from server.master.options import MasterOptions
from server.notify import Notifier, pairing_topic, session_topic, status_topic
from server.settings import ServerSettings
from sim import prereqs
from sim.readiness import free_port

SHARED_IDENTITY = (CA_KEY, CA_CERT, LEAF_KEY, LEAF_CERT)


@pytest.fixture
def database_url(postgres_cluster) -> str:
    """Replicas need a database several processes share: PostgreSQL only."""
    return postgres_cluster.fresh()


@pytest.fixture
def replicas(database_url) -> Iterator[tuple[BatmServer, BatmServer]]:
    with replicas_on(database_url, [settings, settings]) as servers:
        yield servers


@pytest.fixture
def broker_replicas(database_url) -> Iterator[tuple[BatmServer, BatmServer]]:
    """Two replicas, each running one of the fleet's two brokers (`--brokers`)."""
    require_mosquitto()
    brokers = [ServerAddress("127.0.0.1", free_port()) for _ in range(2)]

    def running(index: int) -> Callable[[Path, str], ServerSettings]:
        own_first = (brokers[index], brokers[1 - index])
        return lambda data_dir, url: ServerSettings(
            data_dir, ServerAddress("127.0.0.1", 0), database=url, mqtt_listen=own_first[0],
            master=MasterOptions(brokers=own_first))

    with replicas_on(database_url, [running(0), running(1)]) as servers:
        yield servers


@contextlib.contextmanager
def replicas_on(database_url: str, make: list[Callable[[Path, str], ServerSettings]]
                ) -> Iterator[tuple[BatmServer, BatmServer]]:
    dirs = [Path(tempfile.mkdtemp(prefix="batm-r", dir="/tmp")) for _ in range(2)]  # short
    try:
        with contextlib.ExitStack() as stack:
            first = stack.enter_context(serving(make[0](dirs[0], database_url)))
            for name in SHARED_IDENTITY:  # replicas show one identity (docs/deployment.md)
                shutil.copy2(dirs[0] / name, dirs[1] / name)
            second = stack.enter_context(serving(make[1](dirs[1], database_url)))
            yield first, second
    finally:
        for path in dirs:
            shutil.rmtree(path, ignore_errors=True)


def settings(data_dir: Path, database_url: str) -> ServerSettings:
    return ServerSettings(data_dir, ServerAddress("127.0.0.1", 0), database=database_url)


def gate_of(server: BatmServer) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(server.data_dir / "ca.pem"))
    return httpx.Client(base_url=f"https://{server.gate_address}", verify=context,
                        timeout=LONG_WAIT + 10)


def admin_of(server: BatmServer) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(server.admin_socket)),
                        base_url="http://admin", timeout=10)


def test_replicas_show_terminals_the_same_server_key(replicas):
    first, second = replicas
    assert handshake_spki(first) == handshake_spki(second)


def test_approval_through_replica_2_wakes_a_pairing_poll_on_replica_1_at_once(replicas):
    first, second = replicas
    with gate_of(first) as gate, admin_of(second) as admin:
        create(admin, "T-1")
        terminal = FakeTerminal(gate, "T-1")
        assert terminal.hello().status_code == 200 and terminal.reveal().status_code == 200
        code = terminal.code(handshake_spki(first))
        response, elapsed = long_poll(
            lambda: terminal.poll(wait=LONG_WAIT), first, pairing_topic(terminal.request_id),
            lambda: approve(admin, "T-1", code).raise_for_status())
    assert response.json() == {"status": "approved"}
    assert elapsed < PROMPT, f"the long-poll took {elapsed:.1f}s: replica 2 did not wake it"


def test_unpair_through_replica_2_wakes_the_session_poll_on_replica_1_at_once(replicas):
    first, second = replicas
    with gate_of(first) as gate, admin_of(first) as admin, admin_of(second) as other_admin:
        create(admin, "T-1")
        terminal = pair(first, gate, admin, "T-1")
        response, elapsed = long_poll(
            lambda: terminal.session(wait=LONG_WAIT), first, session_topic("T-1"),
            lambda: other_admin.post("/api/v1/terminals/T-1/unpair").raise_for_status())
    assert response.json() == {"status": "unpaired"}
    assert elapsed < PROMPT, f"the session poll took {elapsed:.1f}s: replica 2 did not wake it"


def test_a_signed_request_replayed_through_the_other_replica_is_refused(replicas):
    """The attack: capture a terminal's signed check-in on its way to replica 1, send it again
    to replica 2 within the clock-skew window."""
    first, second = replicas
    with gate_of(first) as gate, gate_of(second) as other_gate, admin_of(first) as admin:
        create(admin, "T-1")
        terminal = pair(first, gate, admin, "T-1")
        body = json.dumps({"version": terminal.version}).encode()
        headers = sign_headers(terminal.key, "T-1", "POST", "/api/v1/checkin", body)
        assert gate.post("/api/v1/checkin", content=body, headers=headers).json() == {
            "status": "paired"}
        replayed = other_gate.post("/api/v1/checkin", content=body, headers=headers)
    assert_error(replayed, 401, "bad_signature", "replay")


def test_the_same_signed_request_sent_to_both_replicas_at_once_is_accepted_once(replicas):
    first, second = replicas
    with gate_of(first) as gate, gate_of(second) as other_gate, admin_of(first) as admin:
        create(admin, "T-1")
        terminal = pair(first, gate, admin, "T-1")
        body = json.dumps({"version": terminal.version}).encode()
        for _ in range(5):
            headers = sign_headers(terminal.key, "T-1", "POST", "/api/v1/checkin", body)

            def send(client: httpx.Client, headers: dict = headers) -> int:
                return client.post("/api/v1/checkin", content=body, headers=headers).status_code

            with ThreadPoolExecutor(max_workers=2) as pool:
                answers = list(pool.map(send, (gate, other_gate)))
            assert sorted(answers) == [200, 401], answers


def test_hello_rates_are_spent_from_one_bucket_whichever_replica_answers(replicas):
    """The per-source burst is 20: 12 hellos to each replica is 24 from one address."""
    first, second = replicas
    with gate_of(first) as gate, gate_of(second) as other_gate:
        to_first = [FakeTerminal(gate, f"X-{i}").hello().status_code for i in range(12)]
        to_second = [FakeTerminal(other_gate, f"Y-{i}").hello().status_code for i in range(12)]
    assert set(to_first) == {404}  # unknown serials, within the rate
    assert 429 in to_second, to_second


# ------------------------------------------------------------------ revocation across brokers


@pytest.fixture
def sessions_opened() -> Iterator[list]:
    """The MQTT clients a test opened, closed after it whatever happened."""
    clients: list = []
    yield clients
    for client in clients:
        client.loop_stop()
        client.disconnect()


def on_broker_of(server: BatmServer, gate: httpx.Client, admin: httpx.Client, opened: list):
    """A terminal paired through `server` whose broker is `server`'s own, with its MQTT
    credentials, connected: (terminal, password, its MQTT connection's disconnected Event)."""
    brokers = list(server.settings.master.brokers)
    serial = next(s for s in (f"T-{i}" for i in range(200)) if assign(s, brokers) == brokers[0])
    create(admin, serial)
    terminal = pair(server, gate, admin, serial)
    password = secrets.token_urlsafe(32)
    answer = terminal.signed("POST", "/api/v1/master/credentials", {"password": password})
    assert answer.status_code == 200, answer.text
    assert answer.json()["broker"] == str(brokers[0])
    client, rc, disconnected = mqtt_login(server, serial, password)
    opened.append(client)
    assert rc is not None and not rc.is_failure, rc
    return terminal, password, disconnected


def mqtt_login(server: BatmServer, serial: str, password: str):
    broker = server.settings.master.brokers[0]
    client, rc, disconnected = tls_connect(broker.host, broker.port, server.data_dir / "ca.pem",
                                           serial, password, serial)
    return client, rc, disconnected


def refused(server: BatmServer, serial: str, password: str) -> bool:
    client, rc, _ = mqtt_login(server, serial, password)
    client.loop_stop()
    client.disconnect()
    return rc is None or rc.is_failure


def test_an_unpair_through_replica_1_cuts_the_mqtt_session_on_replica_2s_broker(
        broker_replicas, sessions_opened):
    """The attack: the thief holds the terminal's MQTT password; the operator unpairs it on
    whichever replica the console reached."""
    first, second = broker_replicas
    with gate_of(second) as gate, admin_of(second) as admin, admin_of(first) as other_admin:
        terminal, password, disconnected = on_broker_of(second, gate, admin, sessions_opened)
        other_admin.post(f"/api/v1/terminals/{terminal.serial}/unpair").raise_for_status()
        assert disconnected.wait(PROMPT), "the session on the other replica's broker lives on"
    assert refused(second, terminal.serial, password), "the revoked password still logs in"


# The replicas' listening connections end (they reconnect, and catch up on what they missed).
LISTENERS_DROPPED = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()")


def unheard(database_url: str, statement: str, serial: str | None = None) -> None:
    """Change the shared database behind the replicas' backs: no NOTIFY goes out."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as db:
            db.execute(text(statement), {"s": serial} if serial is not None else {})
    finally:
        engine.dispose()


def test_an_unpair_whose_wake_up_never_came_is_revoked_when_the_replica_catches_up(
        broker_replicas, database_url, sessions_opened):
    """The unpairing replica died between its commit and its NOTIFY (here: the row changed
    by hand, no NOTIFY at all); the other replica's listening connection drops and comes back,
    and what it missed is revoked then."""
    _first, second = broker_replicas
    with gate_of(second) as gate, admin_of(second) as admin:
        terminal, password, disconnected = on_broker_of(second, gate, admin, sessions_opened)
    unheard(database_url, "UPDATE terminals SET state = 'unpaired' WHERE serial = :s",
            terminal.serial)
    assert not disconnected.wait(0.5)  # nobody was told
    unheard(database_url, LISTENERS_DROPPED)
    assert disconnected.wait(PROMPT + 5), "a missed unpair was not caught up with"
    assert refused(second, terminal.serial, password)


def test_a_re_pair_before_the_replica_heard_of_the_unpair_still_ends_the_old_credentials(
        broker_replicas, database_url, sessions_opened):
    """Unpaired and paired again (a new key) with no wake-up in between: the account was
    granted for the old pairing, so the catch-up revokes it although the terminal is paired."""
    _first, second = broker_replicas
    with gate_of(second) as gate, admin_of(second) as admin:
        terminal, password, disconnected = on_broker_of(second, gate, admin, sessions_opened)
    unheard(database_url, "UPDATE terminals SET paired_at = paired_at + interval '1 minute' "
            "WHERE serial = :s", terminal.serial)
    unheard(database_url, LISTENERS_DROPPED)
    assert disconnected.wait(PROMPT + 5), "the old pairing's session outlived the re-pair"
    assert refused(second, terminal.serial, password)


# ------------------------------------------------------------------ the notifier alone


def test_control_events_cross_processes_and_status_rows_do_not(database_url):
    async def scenario() -> tuple[bool, bool]:
        engines = [create_engine(database_url) for _ in range(2)]
        here, there = Notifier(), Notifier()
        links = [here.share(engines[0]), there.share(engines[1])]
        try:
            for link in links:
                assert await asyncio.to_thread(link.listening.wait, 10)
            with here.listen(pairing_topic("R1")) as control, \
                    here.listen(status_topic("T-1")) as status:
                there.notify(status_topic("T-1"))
                there.notify(pairing_topic("R1"))
                woken = await control.wait(PROMPT)
                status_woken = await status.wait(0.5)
            return woken, status_woken
        finally:
            for link in links:
                link.stop()
            for engine in engines:
                engine.dispose()

    woken, status_woken = asyncio.run(scenario())
    assert woken, "a pairing wake-up did not reach the other process"
    assert not status_woken, "status rows must stay in the process that ingests them"


def test_a_sqlite_server_shares_nothing(tmp_path):
    from server.db.engine import close_database, open_database

    sessions = open_database(tmp_path)
    assert Notifier().share(sessions.kw["bind"]) is None
    close_database(sessions)


# ------------------------------------------------------------------ the VPN endpoint likewise


def require_wireguard() -> None:
    """Root and wireguard-go or, in CI, a failure (outside CI: a skip naming what to install)."""
    problem = None
    if os.geteuid() != 0:
        problem = "a WireGuard endpoint needs root"
    elif prereqs.missing_binaries(["wireguard-go"]):
        hint = prereqs.install_hint(prereqs.missing_binaries(["wireguard-go"]))
        problem = f"wireguard-go is not installed (`{hint}`)"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)


def test_a_peer_another_replica_revoked_is_dropped_from_this_replicas_endpoint(
        database_url, tmp_path):
    """Scenario A with a WireGuard endpoint per replica: the unpairing replica clears the key in
    the shared database and drops its own peer; this endpoint drops its peer when the wake-up
    (one serial) or the catch-up (every peer) reaches it — for an unpair and for a new key."""
    require_wireguard()
    from server.db.engine import close_database, open_database
    from server.db.terminals import Terminal
    from server.db.vpn import VpnConfigRow
    from server.vpn.service import start_vpn
    from server.vpn.settings import VpnSettings

    sessions = open_database(tmp_path, database_url)
    now = datetime.datetime.now(datetime.UTC)
    keys = {serial: str(WireguardKey.generate().public_key()) for serial in ("T-A1", "T-A2")}
    with sessions() as session, session.begin():
        for number, (serial, key) in enumerate(keys.items(), start=10):
            session.add(Terminal(serial=serial, scenario="A", state="paired", paired_at=now,
                                 created_at=now))
            session.flush()
            session.add(VpnConfigRow(serial=serial, tunnel_address=f"198.51.100.{number}",
                                     public_key=key, created_at=now))
    vpn = start_vpn(VpnSettings(ServerAddress("127.0.0.1", free_port()),
                                interface=f"batmr{os.getpid() % 100000}",
                                subnet=ipaddress.ip_network("198.51.100.0/24")),
                    tmp_path, sessions)
    try:
        endpoint = vpn.endpoint
        assert endpoint is not None

        def keys_on_interface() -> set[str]:
            return {peer.public_key for peer in endpoint.iface.peers()}

        assert keys_on_interface() == set(keys.values())
        assert vpn.drop_revoked_peers() == []  # both still granted

        with sessions() as session, session.begin():  # replica 1 unpairs T-A1 …
            session.get(Terminal, "T-A1").state = "unpaired"
            session.get(VpnConfigRow, "T-A1").public_key = None
            # … and T-A2 paired again with a new key it has not sent to this endpoint yet
            session.get(VpnConfigRow, "T-A2").public_key = str(
                WireguardKey.generate().public_key())
        assert vpn.drop_revoked_peers("T-A1") == ["T-A1"]  # the wake-up names one terminal
        assert keys_on_interface() == {keys["T-A2"]}
        assert vpn.drop_revoked_peers() == ["T-A2"]  # the catch-up checks every peer
        assert keys_on_interface() == set()
    finally:
        if vpn.endpoint is not None:
            vpn.endpoint.stop()
        close_database(sessions)
