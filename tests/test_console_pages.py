"""The console's pages, in-process: login with TOTP, session cookies and their flags, CSRF on
every change, lockouts, locations (404) and roles (403) in pages and downloads, the list, the
row actions, creation from a CSV. The same checks in a real Chromium: test_console_browser.py."""

from __future__ import annotations

import datetime
import re

import pytest
from fastapi.testclient import TestClient
from test_console_api import PASSWORD, Console

from server.http.console.web import COOKIE


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    made = Console(tmp_path_factory.mktemp("console-pages"))
    made.registry.create_terminal("L1-A", "A", "L1")
    made.registry.create_terminal("L2-A", "A", "L2")
    return made


def browser(console: Console) -> TestClient:
    return TestClient(console.app, base_url="https://testserver", follow_redirects=False)


def login_post(web: TestClient, **fields):
    """Fill the login form as a browser does: the form first (its token), then the post."""
    token = re.search(r'name="login_token" value="([^"]+)"', web.get("/login").text).group(1)
    return web.post("/login", data={**fields, "login_token": token})


def log_in(console: Console, name: str) -> TestClient:
    web = browser(console)
    code = console.totp(name) if console.totp_secrets[name] else ""
    answer = login_post(web, name=name, password=PASSWORD, code=code)
    assert answer.status_code == 303, answer.text
    return web


def csrf(page_html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page_html).group(1)


@pytest.fixture(scope="module")
def olga(console):
    return log_in(console, "olga")


def test_pages_need_a_login(console):
    web = browser(console)
    for path in ("/", "/terminals", "/pairing-requests", "/terminals/L1-A", "/audit"):
        answer = web.get(path)
        assert answer.status_code == 303 and answer.headers["location"] in ("/login",
                                                                              "/terminals")
    assert web.get("/terminals/rows", headers={"HX-Request": "true"}).status_code == 401
    page = web.get("/login")
    assert page.status_code == 200 and '<label for="password">' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_an_operator_needs_a_current_totp_code(console):
    web = browser(console)
    no_code = login_post(web, name="otto", password=PASSWORD)
    assert no_code.status_code == 401 and COOKIE not in no_code.cookies
    assert "wrong user name, password or authenticator code" in no_code.text
    web = log_in(console, "otto")
    assert web.get("/terminals").status_code == 200


def test_the_login_form_has_its_own_csrf_token(console):
    web = browser(console)
    forged = web.post("/login", data={"name": "vic", "password": PASSWORD})
    assert forged.status_code == 403 and COOKIE not in forged.cookies
    web.get("/login")  # the cookie alone is not enough: the form must repeat it
    assert web.post("/login", data={"name": "vic", "password": PASSWORD,
                                    "login_token": "guess"}).status_code == 403
    assert login_post(web, name="vic", password=PASSWORD).status_code == 303


def test_the_session_cookie_is_secure_httponly_samesite_strict(console):
    web = browser(console)
    answer = login_post(web, name="vic", password=PASSWORD)
    assert answer.status_code == 303, "a viewer has no second factor"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(COOKIE + "=") and COOKIE.startswith("__Host-")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= flags
    assert not any(flag.startswith("domain") for flag in flags)


def test_logging_in_is_locked_out_after_repeated_failures(tmp_path):
    locked = Console(tmp_path)
    web = browser(locked)
    for _ in range(5):
        assert login_post(web, name="vic", password="wrong password!").status_code == 401
    right = login_post(web, name="vic", password=PASSWORD)
    assert right.status_code == 429 and "try again in" in right.text
    assert COOKIE not in right.cookies
    entries = locked.service.audit.entries(locked.service.users.principal("ada"),
                                           action="login")
    assert [e["result"] for e in entries][:2] == ["locked_out", "bad_credentials"]


def test_logout_and_inactivity_end_the_session(console):
    web = log_in(console, "vic")
    page = web.get("/terminals")
    assert web.post("/logout", data={"csrf_token": csrf(page.text)}).status_code == 303
    assert web.get("/terminals").status_code == 303, "the server revoked it"
    idle = log_in(console, "vic")
    console.clock.offset += datetime.timedelta(minutes=31)
    assert idle.get("/terminals").status_code == 303


def test_the_list_shows_ones_locations_only(console, olga):
    page = olga.get("/terminals")
    assert page.status_code == 200
    assert "L1-A" in page.text and "L2-A" not in page.text
    rows = olga.get("/terminals/rows", params={"q": "L1"})
    assert rows.text.lstrip().startswith("<div id=\"list\"") and "L1-A" in rows.text


def test_another_locations_terminal_is_404_in_pages_and_downloads(console, olga):
    token = csrf(olga.get("/terminals").text)
    assert olga.get("/terminals/L2-A").status_code == 404
    assert olga.get("/terminals/L2-A/vpn.json").status_code == 404
    for action in ("approve", "unpair", "vpn", "delete"):
        answer = olga.post(f"/terminals/L2-A/{action}",
                           data={"csrf_token": token, "code": "ABCD-1234", "confirm": "yes"})
        assert answer.status_code == 404, action
        assert "L2-A" not in answer.text.replace("'L2-A'", "") or "no terminal" in answer.text


def test_a_missing_or_wrong_csrf_token_is_403_and_changes_nothing(console, olga):
    code = console.pending("CSRF-1", "L1")
    for data in ({"code": code}, {"code": code, "csrf_token": "forged"}):
        answer = olga.post("/terminals/CSRF-1/approve", data=data)
        assert answer.status_code == 403 and "CSRF" in answer.text
        assert 'name="csrf_token"' not in answer.text, "no fresh token for a forged request"
    assert console.call("ada", "GET", "/terminals/CSRF-1").json()["state"] == "pairing"
    made = olga.post("/terminals/new", data={"serial": "CSRF-2", "scenario": "B",
                                             "location": "L1"})
    assert made.status_code == 403
    assert console.call("ada", "GET", "/terminals/CSRF-2").status_code == 404
    refusals = console.call("ada", "GET", "/audit", params={"action": "form"}).json()["entries"]
    assert {(e["actor"], e["result"], e["detail"]) for e in refusals} >= {
        ("olga", "csrf", "POST /terminals/CSRF-1/approve"),
        ("olga", "csrf", "POST /terminals/new")}


def test_approve_on_the_page_wrong_code_then_right_code(console, olga):
    code = console.pending("PAGE-1", "L1")
    token = csrf(olga.get("/pairing-requests").text)
    wrong = olga.post("/terminals/PAGE-1/approve", data={"csrf_token": token,
                                                         "code": "AAAA-0000"})
    assert wrong.status_code == 409 and "does not match" in wrong.text
    right = olga.post("/terminals/PAGE-1/approve", data={"csrf_token": token, "code": code})
    assert right.status_code == 200 and "Approved: terminal PAGE-1 is paired" in right.text
    unconfirmed = olga.post("/terminals/PAGE-1/unpair", data={"csrf_token": token})
    assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.text
    console.woken.clear()
    unpaired = olga.post("/terminals/PAGE-1/unpair", data={"csrf_token": token,
                                                           "confirm": "yes"})
    assert "now shows a new pairing code" in unpaired.text
    assert "session:PAGE-1" in console.woken
    audit = olga.get("/audit", params={"serial": "PAGE-1"}).text
    assert "code_mismatch" in audit and "unpair" in audit


def test_a_viewer_sees_no_actions_and_is_refused_if_trying(console):
    vic = log_in(console, "vic")
    code = console.pending("VIEWP-1", "L1")
    page = vic.get("/terminals/VIEWP-1")
    assert page.status_code == 200 and "Approve" not in page.text
    refused = vic.post("/terminals/VIEWP-1/approve", data={"csrf_token": csrf_of(vic),
                                                           "code": code})
    assert refused.status_code == 403 and "a viewer may not approve" in refused.text
    assert console.call("ada", "GET", "/terminals/VIEWP-1").json()["state"] == "pairing"


def csrf_of(web: TestClient) -> str:
    return csrf(web.get("/terminals").text)


def test_create_one_and_many_from_csv(console, olga):
    token = csrf(olga.get("/terminals/new").text)
    one = olga.post("/terminals/new", data={"csrf_token": token, "serial": "NEW-1",
                                            "scenario": "A", "location": "L1"})
    assert one.status_code == 303 and one.headers["location"] == "/terminals/NEW-1"
    csv = b"serial,scenario,location\nCSV-1,B,L1\nCSV-2,a,L1\nCSV-3,B,L2\nbad serial,B,L1\n"
    many = olga.post("/terminals/import", data={"csrf_token": token},
                     files={"csv": ("fleet.csv", csv, "text/csv")})
    assert many.status_code == 200 and "2 of 4 terminals created" in many.text
    assert "you do not work on location &#39;L2&#39;" in many.text
    listed = console.call("olga", "GET", "/terminals", params={"q": "CSV-"}).json()
    assert [(t["serial"], t["scenario"]) for t in listed["terminals"]] == [("CSV-1", "B"),
                                                                          ("CSV-2", "A")]


def test_the_export_is_the_lists_filters_within_ones_locations(console, olga):
    export = olga.get("/terminals.csv", params={"q": "-A", "page": 3})
    assert export.status_code == 200
    assert export.text.splitlines()[1:] == ["L1-A,L1,A,never_paired,False,,,,,,,"]
    assert 'href="/terminals.csv?' in olga.get("/terminals").text


def test_vpn_configuration_download_needs_the_vpn_service(console, olga):
    answer = olga.get("/terminals/L1-A/vpn.json")
    assert answer.status_code == 503 and "no VPN service" in answer.text


def test_htmx_is_served_from_the_repository(console):
    script = browser(console).get("/static/htmx.min.js")
    assert script.status_code == 200 and b"htmx" in script.content[:2000]
