"""The gate and the admin API over real sockets: HTTPS on 127.0.0.1, the admin Unix socket.

The server runs in a thread (its own asyncio loop, both listeners), so tests can see when a
long-poll is really waiting (Notifier.listener_count) instead of sleeping and hoping.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from waiting import wait_for

from batm_common import pairing_code
from batm_common.hostaddr import ServerAddress
from batm_common.signing import b64url, canonical, sign_headers, unb64url
from server.app import BatmServer
from server.notify import pairing_topic, session_topic
from server.settings import ServerSettings

LONG_WAIT = 20  # seconds a long-poll may wait; "at once" must be far below it
# Input the gate refuses on its own, whatever the database: one engine is enough (the fixture
# `database_url` runs every other test on SQLite and PostgreSQL).
SQLITE_ONLY = pytest.mark.parametrize("database_url", [None], ids=["sqlite"])
PROMPT = 5.0


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to 107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="batm-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def serving(settings: ServerSettings) -> Iterator[BatmServer]:
    """A BatmServer in a thread of its own, ready; stopped (and checked) on leaving."""
    srv = BatmServer(settings)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            asyncio.run(srv.run())
        except BaseException as exc:  # report it in the test, not on a dead thread
            failure.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    wait_for(lambda: srv.ready.is_set() or not thread.is_alive())
    assert srv.ready.is_set(), failure
    try:
        yield srv
    finally:
        srv.stop()
        thread.join(10)
    assert not thread.is_alive(), "the server did not stop"
    assert not failure, failure


@pytest.fixture
def server(short_dir, database_url) -> Iterator[BatmServer]:
    with serving(ServerSettings(short_dir, ServerAddress("127.0.0.1", 0),
                                database=database_url)) as srv:
        yield srv


@pytest.fixture
def gate(server) -> Iterator[httpx.Client]:
    # Verifying against the server's CA also proves the leaf carries 127.0.0.1 in its SANs.
    context = ssl.create_default_context(cafile=str(server.data_dir / "ca.pem"))
    with httpx.Client(base_url=f"https://{server.gate_address}", verify=context,
                      timeout=LONG_WAIT + 10) as client:
        yield client


@pytest.fixture
def admin(server) -> Iterator[httpx.Client]:
    transport = httpx.HTTPTransport(uds=str(server.admin_socket))
    with httpx.Client(transport=transport, base_url="http://admin", timeout=10) as client:
        yield client


def handshake_spki(server: BatmServer) -> bytes:
    """The server key as a terminal sees it in the TLS handshake (not read from its files)."""
    assert server.gate_address is not None
    pem = ssl.get_server_certificate(("127.0.0.1", server.gate_address.port))
    cert = x509.load_pem_x509_certificate(pem.encode())
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


class FakeTerminal:
    def __init__(self, gate: httpx.Client, serial: str, version: int = 20240101):
        self.gate = gate
        self.serial = serial
        self.version = version
        self.key = Ed25519PrivateKey.generate()
        self.public = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.nonce = pairing_code.new_nonce()
        self.request_id = ""
        self.server_nonce = b""

    def hello(self) -> httpx.Response:
        response = self.gate.post("/api/v1/hello", json={
            "serial": self.serial, "version": self.version, "hardware": "rpi4",
            "identity_key": b64url(self.public), "commitment": pairing_code.commitment(self.nonce),
        })
        if response.status_code == 200:
            self.request_id = response.json()["request_id"]
            self.server_nonce = unb64url(response.json()["server_nonce"])
        return response

    def signed(self, method: str, path: str, body: dict | bytes | None = None,
               key: Ed25519PrivateKey | None = None, **kwargs) -> httpx.Response:
        content = body if isinstance(body, bytes) else (
            json.dumps(body).encode() if body is not None else b"")
        headers = sign_headers(key or self.key, self.serial, method, path, content, **kwargs)
        return self.gate.request(method, path, content=content, headers=headers)

    def reveal(self, nonce: bytes | None = None) -> httpx.Response:
        return self.signed("POST", f"/api/v1/pairing/{self.request_id}/reveal",
                           {"terminal_nonce": b64url(nonce or self.nonce)})

    def poll(self, wait: float = 0) -> httpx.Response:
        return self.signed("GET", f"/api/v1/pairing/{self.request_id}?wait={wait}")

    def session(self, wait: float = 0) -> httpx.Response:
        return self.signed("GET", f"/api/v1/session?wait={wait}")

    def checkin(self) -> httpx.Response:
        return self.signed("POST", "/api/v1/checkin", {"version": self.version})

    def code(self, server_spki: bytes) -> str:
        return pairing_code.derive(self.public, server_spki, self.server_nonce, self.nonce)


def create(admin: httpx.Client, serial: str, scenario: str = "B") -> None:
    response = admin.post("/api/v1/terminals", json={"serial": serial, "scenario": scenario,
                                                      "location": None})
    assert response.status_code == 201, response.text


def approve(admin: httpx.Client, serial: str, code: str) -> httpx.Response:
    return admin.post(f"/api/v1/pairing-requests/{serial}/approve", json={"code": code})


def pair(server, gate, admin, serial: str) -> FakeTerminal:
    terminal = FakeTerminal(gate, serial)
    assert terminal.hello().status_code == 200
    assert terminal.reveal().status_code == 200
    assert approve(admin, serial, terminal.code(handshake_spki(server))).status_code == 200
    return terminal


def long_poll(
    request: Callable[[], httpx.Response], server: BatmServer, topic: str,
    action: Callable[[], object],
) -> tuple[httpx.Response, float]:
    """Start a long-poll, wait until the server really holds it, act; return its answer/time."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        future = pool.submit(request)
        wait_for(lambda: server.notifier.listener_count(topic) == 1 or future.done())
        assert not future.done(), future.result().text
        action()
        response = future.result(timeout=LONG_WAIT + 5)
        return response, time.monotonic() - started


def assert_error(response: httpx.Response, status: int, code: str, mentions: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"}, body
    assert body["error"] == code, body
    assert mentions in body["message"], body


# ---------------------------------------------------------------------------------- pairing


def test_hello_for_unknown_serial_is_unknown_terminal(gate):
    assert_error(FakeTerminal(gate, "NOBODY").hello(), 404, "unknown_terminal", "NOBODY")


def test_hello_answers_with_a_request_nonce_and_the_ca(server, gate, admin):
    create(admin, "T-1")
    response = FakeTerminal(gate, "T-1").hello()
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "pairing" and body["request_id"]
    assert len(unb64url(body["server_nonce"])) == 32
    assert body["ca_cert"] == (server.data_dir / "ca.pem").read_text()
    leaf = x509.load_pem_x509_certificate(ssl.get_server_certificate(
        ("127.0.0.1", server.gate_address.port)).encode())
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(body["ca_cert"].encode()))
    assert admin.get("/api/v1/terminals/T-1").json()["state"] == "pairing"


def test_approval_wakes_the_pairing_long_poll_at_once(server, gate, admin):
    create(admin, "T-1", "A")
    terminal = FakeTerminal(gate, "T-1")
    assert terminal.hello().status_code == 200
    [request] = admin.get("/api/v1/pairing-requests").json()
    assert request["code"] is None and request["state"] == "awaiting_code"
    assert terminal.reveal().json() == {"status": "pending"}

    # Both sides derive the same code from the keys each saw.
    [request] = admin.get("/api/v1/pairing-requests").json()
    code = terminal.code(handshake_spki(server))
    assert request == {**request, "serial": "T-1", "code": code, "state": "pending",
                       "peer": "127.0.0.1", "request_id": terminal.request_id}

    response, elapsed = long_poll(
        lambda: terminal.poll(wait=LONG_WAIT), server, pairing_topic(terminal.request_id),
        lambda: approve(admin, "T-1", code).raise_for_status(),
    )
    assert response.json() == {"status": "approved"}
    assert elapsed < PROMPT, f"the long-poll took {elapsed:.1f}s: it was not woken"

    shown = admin.get("/api/v1/terminals/T-1").json()
    assert shown["state"] == "paired" and shown["version"] == 20240101
    assert shown["identity_fingerprint"] is not None and shown["paired_at"] is not None
    assert admin.get("/api/v1/pairing-requests").json() == []
    assert terminal.poll().json() == {"status": "approved"}
    assert terminal.checkin().json() == {"status": "paired"}


def test_pending_long_poll_answers_pending_after_its_wait(gate, admin):
    create(admin, "T-1")
    terminal = FakeTerminal(gate, "T-1")
    terminal.hello()
    terminal.reveal()
    started = time.monotonic()
    assert terminal.poll(wait=0.5).json() == {"status": "pending"}
    assert time.monotonic() - started >= 0.45


def test_wrong_code_is_refused_and_the_request_stays_pending(server, gate, admin):
    create(admin, "T-1")
    terminal = FakeTerminal(gate, "T-1")
    terminal.hello()
    terminal.reveal()
    code = terminal.code(handshake_spki(server))
    wrong = code[:-1] + ("0" if code[-1] != "0" else "1")
    assert_error(approve(admin, "T-1", wrong), 409, "code_mismatch", "does not match")
    assert_error(approve(admin, "T-1", "ABC-12"), 400, "bad_request", "code")
    [request] = admin.get("/api/v1/pairing-requests").json()
    assert request["state"] == "pending"
    assert terminal.poll().json() == {"status": "pending"}
    assert approve(admin, "T-1", code).status_code == 200


def test_code_from_an_interceptors_key_does_not_match(server, gate, admin):
    create(admin, "T-1")
    terminal = FakeTerminal(gate, "T-1")
    terminal.hello()
    terminal.reveal()
    interceptor_spki = Ed25519PrivateKey.generate().public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert_error(approve(admin, "T-1", terminal.code(interceptor_spki)), 409, "code_mismatch")


def test_approve_before_reveal_is_code_not_ready(gate, admin):
    create(admin, "T-1")
    FakeTerminal(gate, "T-1").hello()
    assert_error(approve(admin, "T-1", "ABCD-1234"), 409, "code_not_ready")
    assert_error(approve(admin, "T-2", "ABCD-1234"), 404, "no_request")


def test_commitment_mismatch_is_refused(gate, admin):
    create(admin, "T-1")
    terminal = FakeTerminal(gate, "T-1")
    terminal.hello()
    assert_error(terminal.reveal(pairing_code.new_nonce()), 400, "commitment_mismatch")
    [request] = admin.get("/api/v1/pairing-requests").json()
    assert request["code"] is None
    assert terminal.reveal().json() == {"status": "pending"}


def test_bad_signatures_are_refused(gate, admin):
    create(admin, "T-1")
    terminal = FakeTerminal(gate, "T-1")
    terminal.hello()
    path = f"/api/v1/pairing/{terminal.request_id}/reveal"
    body = {"terminal_nonce": b64url(terminal.nonce)}
    other_key = Ed25519PrivateKey.generate()
    assert_error(terminal.signed("POST", path, body, key=other_key), 401, "bad_signature")
    # A clock an hour off is not a bad signature: the answer says so, with the server's time.
    skewed = terminal.signed("POST", path, body, now=time.time() - 3600)
    assert_error(skewed, 401, "clock_skew", "timestamp")
    assert abs(int(skewed.headers["X-BATM-Server-Time"]) - time.time()) < 5
    assert_error(gate.post(path, json=body), 401, "bad_signature", "not signed")
    # A signature over another body does not cover this one.
    headers = sign_headers(terminal.key, "T-1", "POST", path, b"{}")
    assert_error(gate.post(path, json=body, headers=headers), 401, "bad_signature")
    # ...nor over another query string.
    headers = sign_headers(terminal.key, "T-1", "GET", f"/api/v1/pairing/{terminal.request_id}",
                           b"")
    response = gate.get(f"/api/v1/pairing/{terminal.request_id}?wait=1", headers=headers)
    assert_error(response, 401, "bad_signature")
    assert admin.get("/api/v1/pairing-requests").json()[0]["state"] == "awaiting_code"


def test_a_new_hello_with_the_same_key_replaces_its_request_and_ends_its_poll(
        server, gate, admin):
    create(admin, "T-1")
    first = FakeTerminal(gate, "T-1")
    first.hello()
    old_request = first.request_id
    again = FakeTerminal(gate, "T-1")
    again.key, again.public = first.key, first.public  # the same terminal, started again
    response, elapsed = long_poll(
        lambda: first.poll(wait=LONG_WAIT), server, pairing_topic(old_request),
        lambda: again.hello(),
    )
    assert_error(response, 404, "unknown_request")
    assert elapsed < PROMPT
    assert_error(first.reveal(), 404, "unknown_request")
    assert [r["request_id"] for r in admin.get("/api/v1/pairing-requests").json()] == [
        again.request_id]


def from_address(server, address: str) -> httpx.Client:
    """A gate client whose connections come from another loopback address (another source)."""
    context = ssl.create_default_context(cafile=str(server.data_dir / "ca.pem"))
    return httpx.Client(base_url=f"https://{server.gate_address}", timeout=LONG_WAIT + 10,
                        transport=httpx.HTTPTransport(verify=context, local_address=address))


def test_hellos_from_strangers_do_not_block_the_genuine_request(server, gate, admin):
    """Issue 13, item 2: an unauthenticated hello with a random key, again and again, used to
    replace the open request, so the kiosk's code never stayed valid long enough to approve."""
    create(admin, "T-1")
    genuine = FakeTerminal(gate, "T-1")
    assert genuine.hello().status_code == 200 and genuine.reveal().status_code == 200
    code = genuine.code(handshake_spki(server))
    statuses = []
    with from_address(server, "127.0.0.2") as attacker_gate:
        for _ in range(12):
            attacker = FakeTerminal(attacker_gate, "T-1")
            statuses.append(attacker.hello().status_code)
            if statuses[-1] == 200:
                attacker.reveal()
    assert 429 in statuses  # the per-serial rate caught up with them
    assert genuine.poll().json() == {"status": "pending"}
    assert len(admin.get("/api/v1/pairing-requests").json()) <= 3  # the stranger's few, mine
    approved = approve(admin, "T-1", code)
    assert approved.status_code == 200, approved.text
    assert genuine.poll().json() == {"status": "approved"}
    assert genuine.checkin().json() == {"status": "paired"}
    assert admin.get("/api/v1/pairing-requests").json() == []  # the others went with approval


def test_the_operator_approves_the_request_whose_code_matches(server, gate, admin):
    create(admin, "T-1")
    spki = handshake_spki(server)
    with from_address(server, "127.0.0.2") as other_gate:
        first, second = FakeTerminal(gate, "T-1"), FakeTerminal(other_gate, "T-1")
        for terminal in (first, second):
            assert terminal.hello().status_code == 200 and terminal.reveal().status_code == 200
        codes = {r["code"] for r in admin.get("/api/v1/pairing-requests").json()}
        assert codes == {first.code(spki), second.code(spki)}
        assert approve(admin, "T-1", first.code(spki)).status_code == 200
        assert_error(second.poll(), 404, "unknown_request")
        assert first.poll().json() == {"status": "approved"}


def test_hellos_are_rate_limited_per_source(gate, admin):
    create(admin, "T-1")
    answers = [FakeTerminal(gate, f"T-{i}").hello() for i in range(40)]  # unknown serials too
    limited = [r for r in answers if r.status_code == 429]
    assert limited, "no rate limit per source"
    assert_error(limited[0], 429, "rate_limited", "try again")


def test_previously_paired_terminal_pairs_again_with_a_new_key(server, gate, admin):
    create(admin, "T-1")
    old = pair(server, gate, admin, "T-1")
    new = FakeTerminal(gate, "T-1", version=20240301)
    new.hello()
    new.reveal()
    assert admin.get("/api/v1/terminals/T-1").json()["state"] == "paired"
    response, elapsed = long_poll(
        lambda: old.session(wait=LONG_WAIT), server, session_topic("T-1"),
        lambda: approve(admin, "T-1", new.code(handshake_spki(server))).raise_for_status(),
    )
    assert response.json() == {"status": "unpaired"} and elapsed < PROMPT
    assert_error(old.checkin(), 401, "bad_signature")
    assert new.checkin().json() == {"status": "paired"}


# ---------------------------------------------------------------------------------- session


def test_unpair_wakes_the_session_long_poll_at_once(server, gate, admin):
    create(admin, "T-1", "A")
    terminal = pair(server, gate, admin, "T-1")
    assert terminal.session().json() == {"status": "paired"}
    response, elapsed = long_poll(
        lambda: terminal.session(wait=LONG_WAIT), server, session_topic("T-1"),
        lambda: admin.post("/api/v1/terminals/T-1/unpair").raise_for_status(),
    )
    assert response.json() == {"status": "unpaired"}
    assert elapsed < PROMPT, f"the session poll took {elapsed:.1f}s: it was not woken"
    assert terminal.session(wait=LONG_WAIT).json() == {"status": "unpaired"}  # at once
    assert_error(terminal.checkin(), 403, "not_paired")
    assert admin.get("/api/v1/terminals/T-1").json()["identity_fingerprint"] is None


def test_checkin_records_version_and_last_seen(server, gate, admin):
    create(admin, "T-1")
    terminal = pair(server, gate, admin, "T-1")
    terminal.version = 20240505
    assert terminal.checkin().json() == {"status": "paired"}
    shown = admin.get("/api/v1/terminals/T-1").json()
    assert shown["version"] == 20240505 and shown["last_seen"] is not None


def test_checkin_of_unknown_or_unpaired_terminals(gate, admin):
    assert_error(FakeTerminal(gate, "GHOST").checkin(), 404, "unknown_terminal")
    create(admin, "T-1")
    assert_error(FakeTerminal(gate, "T-1").checkin(), 403, "not_paired")


def test_shutdown_answers_waiting_long_polls(server, gate, admin):
    create(admin, "T-1")
    terminal = pair(server, gate, admin, "T-1")
    response, elapsed = long_poll(
        lambda: terminal.session(wait=LONG_WAIT), server, session_topic("T-1"), server.stop,
    )
    assert response.json() == {"status": "paired"} and elapsed < PROMPT
    wait_for(lambda: not (server.data_dir / "server.json").exists())
    wait_for(lambda: not server.admin_socket.exists())


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("body", "field"), [
    (b"{not json", "not valid JSON"),
    (b"[]", "JSON object"),
    (b"", "empty"),
    (json.dumps({"version": 1, "hardware": "x", "identity_key": "x", "commitment": "x"}).encode(),
     "serial"),
    (json.dumps({"serial": "T-1", "version": "new", "hardware": "x"}).encode(), "version"),
    (json.dumps({"serial": "T-1", "version": True}).encode(), "version"),
    (json.dumps({"serial": "T-1", "version": 1, "hardware": "x", "identity_key": "!!",
                 "commitment": "ab"}).encode(), "identity_key"),
    (json.dumps({"serial": "T-1", "version": 1, "hardware": "x",
                 "identity_key": b64url(bytes(32)), "commitment": "xyz"}).encode(), "commitment"),
    (json.dumps({"serial": "T 1", "version": 1, "hardware": "x",
                 "identity_key": b64url(bytes(32)), "commitment": "ab" * 32}).encode(), "serial"),
])
@SQLITE_ONLY
def test_malformed_hello_is_400_naming_the_field(gate, admin, body, field):
    create(admin, "T-1")
    response = gate.post("/api/v1/hello", content=body,
                         headers={"Content-Type": "application/json"})
    assert_error(response, 400, "bad_request", field)


def test_malformed_signed_bodies_and_queries_are_400(server, gate, admin):
    create(admin, "T-1")
    terminal = FakeTerminal(gate, "T-1")
    terminal.hello()
    path = f"/api/v1/pairing/{terminal.request_id}/reveal"
    assert_error(terminal.signed("POST", path, {}), 400, "bad_request", "terminal_nonce")
    assert_error(terminal.signed("POST", path, {"terminal_nonce": b64url(b"short")}), 400,
                 "bad_request", "terminal_nonce")
    assert_error(terminal.poll(wait="soon"), 400, "bad_request", "wait")
    assert_error(terminal.poll(wait=31), 400, "bad_request", "wait")
    paired = pair(server, gate, admin, "T-1")
    assert_error(paired.signed("POST", "/api/v1/checkin", {"version": "x"}), 400, "bad_request",
                 "version")
    assert_error(paired.signed("POST", "/api/v1/checkin", b"{"), 400, "bad_request", "JSON")


def test_admin_api_errors(admin):
    assert_error(admin.post("/api/v1/terminals", content=b"{"), 400, "bad_request", "JSON")
    assert_error(admin.post("/api/v1/terminals", json={"scenario": "A"}), 400, "bad_request",
                 "serial")
    assert_error(admin.post("/api/v1/terminals", json={"serial": "T-1", "scenario": "C"}), 400,
                 "bad_request", "scenario")
    create(admin, "T-1")
    assert_error(admin.post("/api/v1/terminals", json={"serial": "T-1", "scenario": "A"}), 409,
                 "exists")
    assert_error(admin.get("/api/v1/terminals/T-9"), 404, "unknown_terminal")
    assert_error(admin.post("/api/v1/terminals/T-1/unpair"), 409, "not_paired")
    assert_error(admin.post("/api/v1/pairing-requests/T-1/approve", json={}), 400,
                 "bad_request", "code")
    assert_error(admin.get("/nowhere"), 404, "not_found")
    assert admin.delete("/api/v1/terminals/T-1").status_code == 204
    assert_error(admin.delete("/api/v1/terminals/T-1"), 404, "unknown_terminal")


@SQLITE_ONLY
def test_admin_socket_is_private(server):
    assert server.admin_socket.stat().st_mode & 0o777 == 0o600
    info = json.loads((server.data_dir / "server.json").read_text())
    assert info["gate"] == str(server.gate_address)
    assert info["admin_socket"] == str(server.admin_socket)


@SQLITE_ONLY
def test_oversized_bodies_are_refused_before_reading(gate):
    huge = b"{" + b" " * 70_000 + b"}"
    assert_error(gate.post("/api/v1/hello", content=huge), 413, "too_large")

    def chunks():  # no Content-Length: the limit must hold while streaming too
        for _ in range(20):
            yield b" " * 8192

    assert_error(gate.post("/api/v1/hello", content=chunks()), 413, "too_large")


# ------------------------------------------------------------------ issue 13, item 7: bad input


# Header bytes: b"\xb2" is what the server reads as "²" (latin-1), which passes isdigit().
@pytest.mark.parametrize("timestamp", [b"\xb2", b"\xb9\xb3", "١٢".encode(), b"9" * 5000, b"-1",
                                       b"1e9"])
@SQLITE_ONLY
def test_malformed_timestamps_are_a_clear_401_not_a_500(server, gate, admin, timestamp):
    create(admin, "T-1")
    pair(server, gate, admin, "T-1")  # so that the signature (and its timestamp) is checked
    for method, path in (("POST", "/api/v1/checkin"), ("GET", "/api/v1/session")):
        headers = {"X-BATM-Serial": "T-1", "X-BATM-Timestamp": timestamp,
                   "X-BATM-Signature": "A" * 86}
        response = gate.request(method, path, headers=headers,
                                content=b'{"version": 20240101}' if method == "POST" else b"")
        assert_error(response, 401, "bad_signature", "timestamp")


@pytest.mark.parametrize("bundle_id", ["²", "１", "9" * 40, "9" * 5000, "99999999999999999999"])
@SQLITE_ONLY
def test_huge_or_non_ascii_firmware_ids_are_404(gate, bundle_id):
    response = gate.get(f"/api/v1/firmware/{bundle_id}/bundle", headers={"X-BATM-Serial": "T-1"})
    assert_error(response, 404, "unknown_bundle")
    assert len(response.json()["message"]) < 200


# ------------------------------------------------------------------ issue 13, item 8: replays


def test_a_signed_request_cannot_be_replayed(server, gate, admin):
    create(admin, "T-1")
    terminal = pair(server, gate, admin, "T-1")
    body = json.dumps({"version": terminal.version}).encode()
    headers = sign_headers(terminal.key, "T-1", "POST", "/api/v1/checkin", body)
    assert "X-BATM-Nonce" in headers
    first = gate.post("/api/v1/checkin", content=body, headers=headers)
    assert first.json() == {"status": "paired"}
    replayed = gate.post("/api/v1/checkin", content=body, headers=headers)
    assert_error(replayed, 401, "bad_signature", "replay")
    # Another nonce is another request: accepted.
    assert terminal.checkin().json() == {"status": "paired"}


def test_a_request_signed_without_nonce_is_accepted_once(server, gate, admin):
    """v1 signatures (older terminals): deterministic, so their replay is caught too."""
    create(admin, "T-1")
    terminal = pair(server, gate, admin, "T-1")
    body = json.dumps({"version": terminal.version}).encode()
    timestamp = str(int(time.time()))
    signature = terminal.key.sign(canonical("POST", "/api/v1/checkin", timestamp,
                                            hashlib.sha256(body).hexdigest()))
    headers = {"X-BATM-Serial": "T-1", "X-BATM-Timestamp": timestamp,
               "X-BATM-Signature": b64url(signature)}
    assert gate.post("/api/v1/checkin", content=body, headers=headers).status_code == 200
    assert_error(gate.post("/api/v1/checkin", content=body, headers=headers), 401,
                 "bad_signature", "replay")
