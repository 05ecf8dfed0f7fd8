"""The pairing domain on a real SQLite file, without HTTP: the registry, pairing requests and
request authentication — states, expiry, approval rules."""

from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from batm_common import pairing_code
from batm_common.signing import sign_headers, unb64url
from server.db.engine import open_database
from server.errors import ServiceError
from server.notify import pairing_topic, session_topic
from server.pairing.authentication import Authenticator, SignedRequest
from server.pairing.registry import Registry
from server.pairing.requests import MAX_OPEN_PER_SOURCE, PairingRequests
from server.pairing.transactions import REQUEST_TTL, Transactions

SERVER_SPKI = b"\x30" + bytes(90)  # any bytes: pairing only feeds them into the code


class Clock:
    def __init__(self) -> None:
        self.now = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


class Terminal:
    """The terminal's side of the pairing exchange, computed independently of the server."""

    def __init__(self, serial: str) -> None:
        self.serial = serial
        self.key = Ed25519PrivateKey.generate()
        self.public = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.nonce = pairing_code.new_nonce()

    def signed(self, method: str, path: str, body: bytes = b"") -> SignedRequest:
        headers = sign_headers(self.key, self.serial, method, path, body)
        return SignedRequest(method, path, body, headers["X-BATM-Serial"],
                             headers["X-BATM-Timestamp"], headers["X-BATM-Signature"],
                             nonce=headers["X-BATM-Nonce"])

    def hello(self, requests: PairingRequests) -> dict:
        answer = requests.hello(self.serial, 20240101, "rpi4", self.public,
                               pairing_code.commitment(self.nonce), peer="192.0.2.7")
        self.server_nonce = unb64url(answer["server_nonce"])
        return answer

    def reveal(self, requests: PairingRequests, request_id: str) -> str:
        """Reveal the nonce; returns the code as the terminal computes it."""
        path = f"/api/v1/pairing/{request_id}/reveal"
        requests.reveal(request_id, self.signed("POST", path), self.nonce)
        return pairing_code.derive(self.public, SERVER_SPKI, self.server_nonce, self.nonce)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def woken() -> list[str]:
    return []


@pytest.fixture
def transactions(tmp_path, clock, woken, database_url) -> Transactions:
    return Transactions(open_database(tmp_path, database_url), notify=woken.append, clock=clock)


@pytest.fixture
def registry(transactions) -> Registry:
    return Registry(transactions)


@pytest.fixture
def requests(transactions) -> PairingRequests:
    return PairingRequests(transactions, server_spki=SERVER_SPKI, ca_pem="CA")


@pytest.fixture
def auth(transactions) -> Authenticator:
    return Authenticator(transactions)


def start_pairing(requests: PairingRequests, terminal: Terminal) -> tuple[str, str]:
    request_id = terminal.hello(requests)["request_id"]
    return request_id, terminal.reveal(requests, request_id)


def state_of(registry: Registry, serial: str) -> str:
    return registry.get_terminal(serial)["state"]


def test_full_pairing_moves_the_terminal_through_its_states(registry, requests, woken):
    registry.create_terminal("T-1", "A", "Shop 1")
    assert state_of(registry, "T-1") == "never_paired"
    terminal = Terminal("T-1")
    request_id, code = start_pairing(requests, terminal)
    assert state_of(registry, "T-1") == "pairing"
    [listed] = requests.list_pairing_requests()
    assert listed["code"] == code and listed["state"] == "pending"
    assert listed["peer"] == "192.0.2.7"

    paired = requests.approve("T-1", code.lower().replace("-", " "))  # typed loosely
    assert paired["state"] == "paired"
    assert paired["version"] == 20240101
    assert paired["identity_fingerprint"] is not None
    assert pairing_topic(request_id) in woken
    assert requests.list_pairing_requests() == []
    assert requests.pairing_status(request_id) == {"status": "approved"}


def test_wrong_code_is_refused_and_the_request_stays_pending(registry, requests):
    registry.create_terminal("T-1", "B", None)
    _request_id, code = start_pairing(requests, Terminal("T-1"))
    wrong = code[:-1] + ("0" if code[-1] != "0" else "1")
    with pytest.raises(ServiceError) as refused:
        requests.approve("T-1", wrong)
    assert (refused.value.status, refused.value.code) == (409, "code_mismatch")
    assert "does not match" in refused.value.message
    assert [r["state"] for r in requests.list_pairing_requests()] == ["pending"]
    assert state_of(registry, "T-1") == "pairing"


@pytest.mark.parametrize("typed", ["ABC", "ABCD-EFGU", "", "ABCD-EFGH-J"])
def test_badly_formed_code_is_a_clear_error(registry, requests, typed):
    registry.create_terminal("T-1", "B", None)
    start_pairing(requests, Terminal("T-1"))
    with pytest.raises(ServiceError) as refused:
        requests.approve("T-1", typed)
    assert (refused.value.status, refused.value.code) == (400, "bad_request")
    assert refused.value.message.startswith("code: ")


def test_code_not_ready_before_reveal_and_no_request_without_hello(registry, requests):
    registry.create_terminal("T-1", "B", None)
    with pytest.raises(ServiceError) as no_request:
        requests.approve("T-1", "ABCD-1234")
    assert (no_request.value.status, no_request.value.code) == (404, "no_request")
    Terminal("T-1").hello(requests)
    with pytest.raises(ServiceError) as not_ready:
        requests.approve("T-1", "ABCD-1234")
    assert (not_ready.value.status, not_ready.value.code) == (409, "code_not_ready")


def test_a_new_hello_replaces_the_open_request_of_its_own_key(registry, requests, woken):
    registry.create_terminal("T-1", "B", None)
    terminal = Terminal("T-1")
    first = terminal.hello(requests)["request_id"]
    second = terminal.hello(requests)["request_id"]  # the same key: the terminal started again
    assert pairing_topic(first) in woken
    assert [r["request_id"] for r in requests.list_pairing_requests()] == [second]
    with pytest.raises(ServiceError) as gone:
        requests.pairing_status(first)
    assert gone.value.code == "unknown_request"


def test_another_keys_hello_opens_a_concurrent_request(registry, requests, clock):
    """Issue 13, item 2: a hello of another key does not cancel the open one; one source holds
    at most MAX_OPEN_PER_SOURCE requests of a serial (its oldest goes)."""
    registry.create_terminal("T-1", "B", None)
    ids = []
    for _ in range(MAX_OPEN_PER_SOURCE):
        ids.append(Terminal("T-1").hello(requests)["request_id"])
        clock.now += datetime.timedelta(seconds=1)
    assert sorted(r["request_id"] for r in requests.list_pairing_requests()) == sorted(ids)
    newest = Terminal("T-1").hello(requests)["request_id"]
    assert sorted(r["request_id"] for r in requests.list_pairing_requests()) == sorted(
        [*ids[1:], newest])


def test_open_requests_expire_after_15_minutes_without_a_poll(registry, requests, clock):
    registry.create_terminal("T-1", "B", None)
    terminal = Terminal("T-1")
    request_id = terminal.hello(requests)["request_id"]
    clock.now += REQUEST_TTL - datetime.timedelta(seconds=1)
    path = f"/api/v1/pairing/{request_id}"
    assert requests.pairing_status(request_id, terminal.signed("GET", path))["status"] == "pending"
    clock.now += REQUEST_TTL - datetime.timedelta(seconds=1)  # the poll kept it alive
    assert len(requests.list_pairing_requests()) == 1
    clock.now += datetime.timedelta(seconds=2)
    assert requests.list_pairing_requests() == []
    assert state_of(registry, "T-1") == "never_paired"


def test_unknown_serial_in_hello_is_unknown_terminal(requests):
    with pytest.raises(ServiceError) as refused:
        Terminal("NOPE").hello(requests)
    assert (refused.value.status, refused.value.code) == (404, "unknown_terminal")


def test_unpair_keeps_the_key_to_tell_the_terminal_and_wakes_its_session(
        registry, requests, auth, woken):
    registry.create_terminal("T-1", "A", None)
    terminal = Terminal("T-1")
    _rid, code = start_pairing(requests, terminal)
    requests.approve("T-1", code)
    answer, key = auth.session_open(terminal.signed("GET", "/api/v1/session?wait=5"))
    assert answer == {"status": "paired"} and key == terminal.public

    woken.clear()
    assert registry.unpair("T-1")["state"] == "unpaired"
    assert session_topic("T-1") in woken
    assert auth.session_status("T-1", key) == {"status": "unpaired"}
    with pytest.raises(ServiceError) as refused:
        auth.checkin(terminal.signed("POST", "/api/v1/checkin", b"{}"), 20240101)
    assert (refused.value.status, refused.value.code) == (403, "not_paired")
    with pytest.raises(ServiceError) as again:
        registry.unpair("T-1")
    assert (again.value.status, again.value.code) == (409, "not_paired")


def test_previously_paired_terminal_repairs_with_a_new_key(registry, requests, auth, woken):
    registry.create_terminal("T-1", "B", None)
    old = Terminal("T-1")
    _rid, code = start_pairing(requests, old)
    requests.approve("T-1", code)

    new = Terminal("T-1")  # the same serial, its credentials wiped
    _rid, new_code = start_pairing(requests, new)
    # An unauthenticated hello must not take a paired terminal out of service.
    assert state_of(registry, "T-1") == "paired"
    old_session = old.signed("POST", "/api/v1/checkin", b"{}")
    assert auth.checkin(old_session, 20240101) == {"status": "paired"}

    woken.clear()
    requests.approve("T-1", new_code)
    assert session_topic("T-1") in woken  # the old key's live session ends now
    assert auth.session_status("T-1", old.public) == {"status": "unpaired"}
    with pytest.raises(ServiceError) as refused:
        auth.checkin(old.signed("POST", "/api/v1/checkin", b"{}"), 20240101)
    assert refused.value.code == "bad_signature"
    assert auth.checkin(new.signed("POST", "/api/v1/checkin", b"{}"), 20240301) == {
        "status": "paired"}
    assert registry.get_terminal("T-1")["version"] == 20240301


def test_create_validates_and_refuses_duplicates(registry):
    registry.create_terminal("T-1", "A", None)
    for serial, scenario, location, needle in [
        ("T-1", "A", None, "already exists"),
        ("-bad", "A", None, "serial"),
        ("x" * 65, "A", None, "longer than 64"),
        ("T-2", "C", None, "scenario"),
        ("T-2", "A", "x" * 201, "location"),
    ]:
        with pytest.raises(ServiceError) as refused:
            registry.create_terminal(serial, scenario, location)
        assert needle in refused.value.message
    assert [t["serial"] for t in registry.list_terminals()] == ["T-1"]


def test_delete_forgets_the_terminal_and_its_requests(registry, requests, woken):
    registry.create_terminal("T-1", "A", None)
    request_id = Terminal("T-1").hello(requests)["request_id"]
    registry.delete_terminal("T-1")
    assert pairing_topic(request_id) in woken and session_topic("T-1") in woken
    assert registry.list_terminals() == [] and requests.list_pairing_requests() == []
    with pytest.raises(ServiceError) as gone:
        registry.get_terminal("T-1")
    assert gone.value.status == 404
