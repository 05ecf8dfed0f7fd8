"""The operator in the console, as a browser user: log in (password + TOTP), create a terminal,
generate its VPN configuration, approve with the code the kiosk shows, unpair from the row
action menu. The demo walks it with a screenshot per page; the HIL suite's ConsoleDriver
drives the same steps (hil_tests/rig/drivers/console.py).
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pyotp

from server.console.totp import code_at
from sim.browser import chromium
from sim.rigfile import RigFile

OPERATOR = "demo-operator"
TIMEOUT_MS = 20_000


def make_operator(server_cli: Callable[..., str], name: str) -> tuple[str, str]:
    """A console operator of every location, with a random password: (password, TOTP secret).

    `server_cli(*args, stdin=...)` runs `batm-server ARGS --data-dir …` and returns stdout."""
    password = secrets.token_urlsafe(18)
    made = json.loads(server_cli("user", "add", name, "--role", "operator", "--all-locations",
                                 "--password-stdin", "--json", stdin=password + "\n"))
    return password, pyotp.parse_uri(made["totp_uri"]).secret


class ConsoleOperator:
    """One logged-in browser page on the console; each step waits for the page it leads to."""

    def __init__(self, page, url: str, shot: Callable[[str], None] = lambda _name: None):
        self.page = page
        self.url = url.rstrip("/")
        self.shot = shot  # called with a page name after each page the operator reaches

    def log_in(self, name: str, password: str, totp_secret: str) -> None:
        page = self.page
        page.goto(self.url + "/terminals")  # a stranger is sent to the login page
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password").fill(password)
        page.get_by_label("Authenticator code").fill(
            code_at(totp_secret, datetime.datetime.now(datetime.UTC)))
        self.shot("login")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(re.compile(r".*/terminals$"))
        self.shot("terminals")

    def create(self, serial: str, scenario: str) -> None:
        page = self.page
        page.get_by_role("link", name="Create terminals").click()
        page.get_by_label("Serial", exact=True).fill(serial)
        page.get_by_label("Scenario", exact=True).select_option(scenario)
        self.shot("create")
        page.get_by_role("button", name="Create", exact=True).click()
        page.get_by_role("heading", name=f"Terminal {serial}").wait_for()
        self.shot("created")

    def _menu(self, serial: str):
        """The row action menu of `serial` on the terminal's page, opened."""
        page = self.page
        page.goto(f"{self.url}/terminals/{serial}")
        menu = page.locator(f"details#actions-{serial}")
        if menu.get_attribute("open") is None:
            menu.locator(":scope > summary").click()  # the menu's own, not a dialog's inside
        return menu

    def generate_vpn(self, serial: str) -> str:
        self._menu(serial).get_by_role("button", name="Generate VPN configuration").click()
        self.shot("vpn")
        return self.page.get_by_role("status").inner_text()

    def approve(self, serial: str, code: str) -> str:
        """Type `code` in the pairing request's menu; the page's answer (approval or refusal)."""
        page = self.page
        page.get_by_role("link", name="Pairing requests").click()
        row = page.get_by_role("row").filter(has_text=serial)
        row.get_by_text("shown: type it to approve").wait_for()
        self.shot("pairing-requests")
        row.get_by_text("Actions").click()
        row.get_by_label("Code shown on the kiosk").fill(code)
        self.shot("approve")
        row.get_by_role("button", name="Approve").click()
        answer = page.locator("p.message").inner_text()
        self.shot("approved" if "Approved" in answer else "refused")
        return answer

    def unpair(self, serial: str) -> str:
        menu = self._menu(serial)
        menu.get_by_label(re.compile("Unpair: the terminal drops its credentials")).check()
        self.shot("unpair")
        menu.get_by_role("button", name="Unpair").click()
        answer = self.page.locator("p.message").inner_text()
        self.shot("unpaired")
        return answer

    def wait_in_list(self, serial: str, state: str) -> None:
        page = self.page
        page.get_by_role("link", name="Terminals", exact=True).click()
        page.get_by_role("row").filter(has_text=serial).filter(has_text=state).wait_for()
        self.shot("terminals-after")


class ConsoleWalk:
    """The demo's walk: log in as an operator it makes, approve; a PNG per console page."""

    def __init__(self, rig: RigFile, shots: Path, say: Callable[[str], None],
                 server_cli: Callable[..., str], work_dir: Path):
        assert rig.server.console_url, "this rig's rig.json has no server.console_url"
        self.rig = rig
        self.shots = shots
        self.say = say
        self.server_cli = server_cli
        self.work_dir = work_dir
        self.taken: list[Path] = []

    def shot(self, page, name: str) -> None:
        path = self.shots / f"console-{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=path, full_page=True)
        self.taken.append(path)

    def approve(self, serial: str, code: str) -> None:
        self.say(f"operator account: batm-server user add {OPERATOR} --role operator "
                 "--all-locations --password-stdin --json")
        password, secret = make_operator(self.server_cli, OPERATOR)
        self.shots.mkdir(parents=True, exist_ok=True)
        with chromium(self.rig.server.netns, self.work_dir) as browser:
            context = browser.new_context(ignore_https_errors=True,  # the server CA's cert
                                          viewport={"width": 1200, "height": 800})
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            operator = ConsoleOperator(page, self.rig.server.console_url,
                                       lambda name: self.shot(page, name))
            self.say(f"operator opens the console: {self.rig.server.console_url}")
            operator.log_in(OPERATOR, password, secret)
            self.say(f"operator types {code} in the console and approves")
            answer = operator.approve(serial, code)
            if "Approved" not in answer:
                raise RuntimeError(f"the console did not approve: {answer}")
            operator.wait_in_list(serial, "paired")
            context.close()
