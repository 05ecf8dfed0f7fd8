"""The console's HTTPS API (/api/v1/ on the console listener), in-process: bearer tokens, the
user's locations (another location's terminal is 404), roles, JSON errors, the audit log, and
approvals and unpairs that wake the terminal like the CLI's."""

from __future__ import annotations

import datetime

import pyotp
import pytest
from fastapi.testclient import TestClient
from test_server_service import SERVER_SPKI, Terminal

from batm_common.clock import utcnow
from server.console import totp
from server.console.service import console_service
from server.db.engine import open_database
from server.http.console.app import create_console_app
from server.notify import session_topic
from server.pairing.registry import Registry
from server.pairing.requests import PairingRequests
from server.pairing.transactions import Transactions

PASSWORD = "correct horse battery"
USERS = {  # name: (role, locations)
    "olga": ("operator", ["L1"]),
    "otto": ("operator", ["L2"]),
    "vic": ("viewer", ["L1"]),
    "ada": ("admin", None),
}


class Clock:
    """The console's clock: real time that a test may push on (TOTP steps, idle sessions)."""

    def __init__(self) -> None:
        self.offset = datetime.timedelta()

    def __call__(self) -> datetime.datetime:
        return utcnow() + self.offset


class ConsoleCalls:
    """What a test does as a console user: TOTP codes and API calls (needs `clock`,
    `totp_secrets`, `tokens` and `client`)."""

    def totp(self, name: str) -> str:
        """A fresh code of `name`'s authenticator (the clock moves a step: codes work once)."""
        self.clock.offset += datetime.timedelta(seconds=30)
        return totp.code_at(self.totp_secrets[name], self.clock())

    def call(self, user: str | None, method: str, path: str, **kwargs):
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return self.client.request(method, "/api/v1" + path, headers=headers, **kwargs)


class Console(ConsoleCalls):
    """One console app on one database, a token per user, and the topics it woke."""

    def __init__(self, data_dir):
        self.woken: list[str] = []
        self.clock = Clock()
        sessions = open_database(data_dir)
        transactions = Transactions(sessions, notify=self.woken.append)
        self.registry = Registry(transactions)
        self.requests = PairingRequests(transactions, server_spki=SERVER_SPKI, ca_pem="")
        self.service = console_service(sessions, self.registry, self.requests,
                                       clock=self.clock)
        users, tokens = self.service.users, self.service.tokens
        self.tokens, self.totp_secrets = {}, {}
        for name, (role, locations) in USERS.items():
            uri = users.add(name, role, locations, PASSWORD)["totp_uri"]
            self.totp_secrets[name] = pyotp.parse_uri(uri).secret if uri else None
            self.tokens[name] = tokens.create(name)
        self.app = create_console_app(self.service)
        self.client = TestClient(self.app, base_url="https://testserver")

    def pending(self, serial: str, location: str) -> str:
        """A terminal of `location` whose pairing request shows a code; returns the code."""
        self.registry.create_terminal(serial, "B", location)
        terminal = Terminal(serial)
        answer = terminal.hello(self.requests)
        return terminal.reveal(self.requests, answer["request_id"])


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    return Console(tmp_path_factory.mktemp("console-api"))


def assert_error(response, status: int, code: str, *mentions: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == code, body
    for mention in mentions:
        assert mention in body["message"]


def test_without_a_token_the_api_answers_401(console):
    assert_error(console.call(None, "GET", "/terminals"), 401, "unauthenticated", "Bearer")
    bad = console.client.get("/api/v1/terminals", headers={"Authorization": "Bearer batm_no"})
    assert_error(bad, 401, "bad_token")
    basic = console.client.get("/api/v1/terminals", headers={"Authorization": "Basic eDp5"})
    assert_error(basic, 401, "unauthenticated")


def test_creating_and_listing_terminals_within_ones_locations(console):
    made = console.call("olga", "POST", "/terminals",
                        json={"serial": "LST-1", "scenario": "B", "location": "L1"})
    assert made.status_code == 201 and made.json()["serial"] == "LST-1"
    console.call("otto", "POST", "/terminals",
                 json={"serial": "LST-2", "scenario": "A", "location": "L2"})
    mine = console.call("olga", "GET", "/terminals", params={"q": "LST-"}).json()
    assert mine["total"] == 1
    assert mine["terminals"] == [{"serial": "LST-1", "location": "L1", "scenario": "B",
                                  "state": "never_paired", "online": False, "version": None,
                                  "last_seen": None, "last_update": None, "last_sync": None,
                                  "last_sync_error": None, "vpn_handshake_age": None,
                                  "highlight": None}]
    every = console.call("ada", "GET", "/terminals", params={"q": "lst-"}).json()
    assert [t["serial"] for t in every["terminals"]] == ["LST-1", "LST-2"]
    other = console.call("olga", "POST", "/terminals",
                         json={"serial": "LST-3", "scenario": "B", "location": "L2"})
    assert_error(other, 403, "forbidden_location", "'L2'")


def test_paging_sorting_and_filters(console):
    for i in range(7):
        console.registry.create_terminal(f"PG-{i}", "B", "L3" if i % 2 else "L4")
    page = console.call("ada", "GET", "/terminals", params={
        "q": "PG-", "per_page": 3, "page": 2, "sort": "serial", "order": "desc"}).json()
    assert page["total"] == 7
    assert [t["serial"] for t in page["terminals"]] == ["PG-3", "PG-2", "PG-1"]
    l3 = console.call("ada", "GET", "/terminals", params={"location": "L3"}).json()
    assert [t["serial"] for t in l3["terminals"]] == ["PG-1", "PG-3", "PG-5"]
    assert_error(console.call("ada", "GET", "/terminals", params={"sort": "secret"}),
                 400, "bad_request", "sort")
    assert_error(console.call("ada", "GET", "/terminals", params={"per_page": "5000"}),
                 400, "bad_request", "per_page")


def test_another_locations_terminal_is_404_for_every_verb(console):
    console.registry.create_terminal("FAR-1", "A", "L2")
    for method, path, body in [("GET", "/terminals/FAR-1", None),
                               ("POST", "/terminals/FAR-1/approve", {"code": "ABCD-1234"}),
                               ("POST", "/terminals/FAR-1/unpair", None),
                               ("POST", "/terminals/FAR-1/vpn", None),
                               ("DELETE", "/terminals/FAR-1", None)]:
        answer = console.call("olga", method, path, json=body)
        unknown = console.call("olga", method, path.replace("FAR-1", "NOPE-1"), json=body)
        assert_error(answer, 404, "unknown_terminal")
        assert answer.json()["message"].replace("FAR-1", "X") == \
            unknown.json()["message"].replace("NOPE-1", "X"), "indistinguishable from absent"
    assert console.call("otto", "GET", "/terminals/FAR-1").status_code == 200


def test_approve_with_the_right_code_wakes_the_terminal(console):
    code = console.pending("APP-1", "L1")
    requests = console.call("olga", "GET", "/pairing-requests").json()["pairing_requests"]
    [mine] = [r for r in requests if r["serial"] == "APP-1"]
    assert mine["location"] == "L1" and mine["code_ready"] and mine["age_seconds"] >= 0
    assert "code" not in mine, "the operator reads the code on the kiosk, not here"
    assert "APP-1" not in [r["serial"] for r in console.call(
        "otto", "GET", "/pairing-requests").json()["pairing_requests"]]
    console.woken.clear()
    approved = console.call("olga", "POST", "/terminals/APP-1/approve", json={"code": code})
    assert approved.status_code == 200 and approved.json()["state"] == "paired"
    assert session_topic("APP-1") in console.woken
    console.woken.clear()
    unpaired = console.call("olga", "POST", "/terminals/APP-1/unpair")
    assert unpaired.json()["state"] == "unpaired"
    assert session_topic("APP-1") in console.woken
    assert_error(console.call("olga", "POST", "/terminals/APP-1/unpair"), 409, "not_paired")


def test_a_wrong_code_is_refused_and_recorded(console):
    console.pending("WRONG-1", "L1")
    wrong = console.call("olga", "POST", "/terminals/WRONG-1/approve", json={"code": "AAAA-0000"})
    assert_error(wrong, 409, "code_mismatch", "does not match")
    [entry] = console.call("olga", "GET", "/audit", params={"serial": "WRONG-1"}).json()["entries"]
    assert entry["actor"] == "olga" and entry["action"] == "approve"
    assert entry["result"] == "code_mismatch" and entry["source"] == "testclient"
    assert console.call("ada", "GET", "/terminals/WRONG-1").json()["state"] == "pairing"


def test_a_viewer_cannot_change_anything(console):
    code = console.pending("VIEW-1", "L1")
    for method, path, body in [("POST", "/terminals/VIEW-1/approve", {"code": code}),
                               ("POST", "/terminals/VIEW-1/unpair", None),
                               ("POST", "/terminals/VIEW-1/vpn", None),
                               ("DELETE", "/terminals/VIEW-1", None),
                               ("POST", "/terminals", {"serial": "VIEW-2", "scenario": "B",
                                                       "location": "L1"})]:
        assert_error(console.call("vic", method, path, json=body), 403, "forbidden", "viewer")
    assert console.call("vic", "GET", "/terminals/VIEW-1").json()["state"] == "pairing"
    refusals = console.call("ada", "GET", "/audit", params={"actor": "vic"}).json()["entries"]
    assert {e["result"] for e in refusals} == {"forbidden"} and len(refusals) == 5


def test_bad_requests_are_400_with_a_sentence(console):
    assert_error(console.call("olga", "POST", "/terminals", content=b"[1]"), 400, "bad_request")
    assert_error(console.call("olga", "POST", "/terminals", json={"serial": "X"}), 400,
                 "bad_request", "scenario")
    assert_error(console.call("olga", "POST", "/terminals", json={
        "serial": "bad serial", "scenario": "B", "location": "L1"}), 400, "bad_request")
    assert_error(console.call("olga", "GET", "/audit", params={"since": "yesterday"}), 400,
                 "bad_request", "since")
    assert_error(console.call("ada", "POST", "/terminals/LST-1/vpn"), 503, "vpn_unavailable")


def test_delete_and_the_audit_log_within_ones_locations(console):
    console.call("otto", "POST", "/terminals",
                 json={"serial": "DEL-2", "scenario": "B", "location": "L2"})
    assert console.call("otto", "DELETE", "/terminals/DEL-2").status_code == 204
    assert_error(console.call("otto", "GET", "/terminals/DEL-2"), 404, "unknown_terminal")
    olga_sees = console.call("olga", "GET", "/audit").json()["entries"]
    assert olga_sees and all(e["location"] == "L1" or e["actor"] == "olga" for e in olga_sees)
    ada_sees = console.call("ada", "GET", "/audit", params={"serial": "DEL-2"}).json()["entries"]
    assert [e["action"] for e in ada_sees] == ["delete", "create"]
    refused = console.call("ada", "GET", "/audit", params={"result": "refused"}).json()
    assert all(e["result"] != "ok" for e in refused["entries"])


def test_guessing_tokens_locks_the_address_out(tmp_path):
    guessed = Console(tmp_path)
    for _ in range(5):
        answer = guessed.client.get("/api/v1/terminals",
                                    headers={"Authorization": "Bearer batm_guess"})
        assert answer.status_code == 401
    locked = guessed.call("olga", "GET", "/terminals")
    assert_error(locked, 429, "locked_out", "try again in")


def test_the_csv_export_follows_the_filters_and_ones_locations(console):
    console.registry.create_terminal("CSVX-1", "B", "L1")
    console.registry.create_terminal("CSVX-2", "B", "L2")
    console.call("ada", "POST", "/terminals", json={"serial": "CSVX-3", "scenario": "A",
                                                    "location": "=HYPERLINK(1)"})
    mine = console.call("olga", "GET", "/terminals.csv", params={"q": "CSVX"})
    assert mine.status_code == 200 and mine.headers["content-type"].startswith("text/csv")
    assert mine.text.splitlines() == [
        "serial,location,scenario,state,online,version,last_update,last_sync,"
        "last_sync_error,vpn_handshake_age,last_seen,highlight",
        "CSVX-1,L1,B,never_paired,False,,,,,,,"]
    every = console.call("ada", "GET", "/terminals.csv",
                         params={"q": "CSVX", "sort": "serial", "order": "desc"}).text
    assert [line.split(",")[0] for line in every.splitlines()[1:]] == [
        "CSVX-3", "CSVX-2", "CSVX-1"]
    assert "'=HYPERLINK(1)" in every, "a formula is never a formula in the export"
    assert_error(console.call(None, "GET", "/terminals.csv"), 401, "unauthenticated")
