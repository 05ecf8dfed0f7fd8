"""The console in a real Chromium: login with TOTP, approving in the browser with the code the
kiosk shows (a wrong one refused on the page), unpairing from the row action menu, the list
updating itself. One browser and one console for the module; each test its own context."""

from __future__ import annotations

import re

import pytest
from browser import ServedApp, launch_chromium, new_page
from test_console_api import PASSWORD, Console

from server.http.console.web import COOKIE
from server.notify import session_topic

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def chromium():
    yield from launch_chromium()


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    made = Console(tmp_path_factory.mktemp("console-browser"))
    served = ServedApp(made.app, tmp_path_factory.mktemp("console-browser-certs"))
    made.url = served.url
    yield made
    served.stop()


@pytest.fixture
def page(chromium, console, tmp_path):
    yield from new_page(chromium, tmp_path)


def log_in(page, console: Console, name: str) -> None:
    page.goto(console.url + "/terminals")
    assert page.url.endswith("/login"), "the console sends a stranger to the login page"
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Authenticator code").fill(console.totp(name))
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/terminals$"))


def test_login_with_totp_and_the_session_cookie(page, console):
    page.goto(console.url + "/login")
    page.get_by_label("User name").fill("olga")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == \
        "wrong user name, password or authenticator code"
    log_in(page, console, "olga")
    assert page.get_by_role("heading", name="Terminals").is_visible()
    [cookie] = [c for c in page.context.cookies() if c["name"] == COOKIE]
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == "", "scripts cannot read the session"


def test_approve_in_the_browser_wrong_code_then_right_code(page, console):
    code = console.pending("BR-1", "L1")
    log_in(page, console, "olga")
    page.get_by_role("link", name="Pairing requests").click()
    row = page.get_by_role("row").filter(has_text="BR-1")
    row.get_by_text("Actions").click()
    row.get_by_label("Code shown on the kiosk").fill("AAAA-0000")
    row.get_by_role("button", name="Approve").click()
    assert "does not match" in page.get_by_role("alert").inner_text()
    assert console.call("ada", "GET", "/terminals/BR-1").json()["state"] == "pairing"

    console.woken.clear()
    page.get_by_text("Actions").first.click()
    page.get_by_label("Code shown on the kiosk").fill(code.lower())
    page.get_by_role("button", name="Approve").click()
    assert "Approved: terminal BR-1 is paired" in page.get_by_role("status").inner_text()
    assert session_topic("BR-1") in console.woken, "the terminal is woken at once"


def test_unpair_from_the_row_action_menu(page, console):
    code = console.pending("BR-2", "L1")
    console.requests.approve("BR-2", code)
    log_in(page, console, "olga")
    page.get_by_label("Search serial or location").fill("BR-2")
    row = page.get_by_role("row").filter(has_text="BR-2")
    row.get_by_text("Actions").click()
    row.get_by_label(re.compile("Unpair: the terminal drops its credentials")).check()
    console.woken.clear()
    row.get_by_role("button", name="Unpair").click()
    assert "now shows a new pairing code" in page.get_by_role("status").inner_text()
    assert session_topic("BR-2") in console.woken
    assert console.call("ada", "GET", "/terminals/BR-2").json()["state"] == "unpaired"


def test_the_list_refreshes_itself(page, console):
    log_in(page, console, "olga")
    assert page.get_by_role("link", name="BR-LATE").count() == 0
    console.registry.create_terminal("BR-LATE", "B", "L1")
    page.get_by_role("link", name="BR-LATE").wait_for(timeout=15_000)
