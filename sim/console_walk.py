"""The demo's console walk: the operator the demo made logs in to the console in headless
Chromium (password and TOTP), finds the terminal's pairing request, types the code the kiosk
shows and approves; a screenshot of each console page it passed through.
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


class ConsoleWalk:
    def __init__(self, rig: RigFile, shots: Path, say: Callable[[str], None],
                 server_cli: Callable[..., str], work_dir: Path):
        assert rig.server.console_url, "this rig's rig.json has no server.console_url"
        self.rig = rig
        self.url = rig.server.console_url.rstrip("/")
        self.shots = shots
        self.say = say
        self.server_cli = server_cli
        self.work_dir = work_dir
        self.taken: list[Path] = []
        self._count = 0

    def make_operator(self) -> tuple[str, str]:
        """The demo's operator (every location), with a random password; (password, secret)."""
        password = secrets.token_urlsafe(18)
        self.say(f"operator account: batm-server user add {OPERATOR} --role operator "
                 "--all-locations --password-stdin --json")
        made = json.loads(self.server_cli("user", "add", OPERATOR, "--role", "operator",
                                          "--all-locations", "--password-stdin", "--json",
                                          stdin=password + "\n"))
        return password, pyotp.parse_uri(made["totp_uri"]).secret

    def shot(self, page, name: str) -> None:
        self._count += 1
        path = self.shots / f"console-{self._count:02d}-{name}.png"
        page.screenshot(path=path, full_page=True)
        self.taken.append(path)

    def approve(self, serial: str, code: str) -> None:
        """Log in, open the pairing requests, type `code` for `serial`, approve."""
        password, secret = self.make_operator()
        self.shots.mkdir(parents=True, exist_ok=True)
        with chromium(self.rig.server.netns, self.work_dir) as browser:
            context = browser.new_context(ignore_https_errors=True,  # the server CA's cert
                                          viewport={"width": 1200, "height": 800})
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            self.say(f"operator opens the console: {self.url}/")
            page.goto(self.url + "/terminals")
            page.get_by_label("User name").fill(OPERATOR)
            page.get_by_label("Password").fill(password)
            page.get_by_label("Authenticator code").fill(
                code_at(secret, datetime.datetime.now(datetime.UTC)))
            self.shot(page, "login")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(re.compile(r".*/terminals$"))
            self.shot(page, "terminals")
            page.get_by_role("link", name="Pairing requests").click()
            row = page.get_by_role("row").filter(has_text=serial)
            row.get_by_text("shown: type it to approve").wait_for()
            self.shot(page, "pairing-requests")
            row.get_by_text("Actions").click()
            row.get_by_label("Code shown on the kiosk").fill(code)
            self.shot(page, "approve")
            self.say(f"operator types {code} in the console and approves")
            row.get_by_role("button", name="Approve").click()
            status = page.get_by_role("status").inner_text()
            if "Approved" not in status:
                raise RuntimeError(f"the console did not approve: {status}")
            self.shot(page, "approved")
            page.get_by_role("link", name="Terminals", exact=True).click()
            page.get_by_role("row").filter(has_text=serial).filter(
                has_text="paired").wait_for()
            self.shot(page, "terminals-after")
            context.close()
