"""ConsoleDriver: the operator's side through the console's pages in a real Chromium (the
server's namespace when the rig has one), as an operator of every location it makes.

Each public call is a traced step; the browser steps themselves are sim/console_walk.py's, the
same the demo walks.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from hil_tests.rig.drivers.server import ServerDriver
from hil_tests.rig.resources import RigFile
from hil_tests.rig.trace import StepTrace, step
from sim.browser import chromium
from sim.console_walk import TIMEOUT_MS, ConsoleOperator, make_operator

OPERATOR = "hil-operator"  # + a suffix per driver: a rig outlives one test's users


class ConsoleDriver:
    def __init__(self, rig: RigFile, server: ServerDriver, work_dir: Path,
                 trace: StepTrace | None = None):
        assert rig.server.console_url, "this rig's rig.json has no server.console_url"
        self.trace = trace
        self.shots = work_dir / "console-screenshots"
        self.shots.mkdir(parents=True, exist_ok=True)

        def server_cli(*args: str, stdin: str | None = None) -> str:
            proc = server.run_with_input(stdin, *args)
            assert proc.returncode == 0, proc.stderr
            return proc.stdout

        self.user = f"{OPERATOR}-{secrets.token_hex(3)}"
        password, secret = make_operator(server_cli, self.user)
        self._browser_cm = chromium(rig.server.netns, work_dir)
        browser = self._browser_cm.__enter__()
        self._context = browser.new_context(ignore_https_errors=True,
                                            viewport={"width": 1200, "height": 800})
        page = self._context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        self._count = 0

        def shot(name: str) -> None:
            self._count += 1
            page.screenshot(path=self.shots / f"{self._count:02d}-{name}.png", full_page=True)

        self.operator = ConsoleOperator(page, rig.server.console_url, shot)
        self.operator.log_in(self.user, password, secret)

    def close(self) -> None:
        self._context.close()
        self._browser_cm.__exit__(None, None, None)

    @step
    def create_terminal(self, serial: str, scenario: str = "B") -> None:
        self.operator.create(serial, scenario)

    @step
    def generate_vpn(self, serial: str) -> str:
        return self.operator.generate_vpn(serial)

    @step
    def approve(self, serial: str, code: str) -> str:
        """The page's answer: "Approved: …" or the refusal's sentence."""
        return self.operator.approve(serial, code)

    @step
    def unpair(self, serial: str) -> str:
        return self.operator.unpair(serial)

    # -- the status monitor (issue 11) ---------------------------------------------------------

    def _monitor(self, serial: str):
        """The monitor, filtered to `serial` (the filters are the URL); its row."""
        page = self.operator.page
        page.goto(f"{self.operator.url}/terminals?q={serial}")
        return page.locator(f'tr[data-serial="{serial}"]')

    @step
    def monitor_row(self, serial: str) -> dict:
        """The row's cells by column name, and its colour ("red", "yellow" or "")."""
        row = self._monitor(serial)
        page = self.operator.page
        names = [h.strip().rstrip("▲▼ ") for h in page.locator("thead th").all_inner_texts()]
        cells = row.locator("td").all_inner_texts()
        return {**dict(zip(names, cells, strict=False)), "class": row.get_attribute("class")}

    @step
    def seconds_until_row(self, serial: str, selector: str, started: float,
                          timeout: float = 10.0) -> float:
        """How long after `started` (time.monotonic) the open monitor's row of `serial`
        matched `selector` (a CSS suffix like ' td.offline'), without a reload."""
        self.operator.page.wait_for_selector(f'tr[data-serial="{serial}"]{selector}',
                                             timeout=timeout * 1000)
        return time.monotonic() - started

    @step
    def retrieve_logs(self, serial: str, since: str, until: str, max_kb: int,
                      timeout: float = 60.0) -> bytes:
        """The seed's dialog: period and maximum size, Request logs; then the download link
        that appears on the page when the archive arrived; the archive's bytes."""
        row = self._monitor(serial)
        page = self.operator.page
        row.get_by_text("Actions").click()
        row.get_by_text("Retrieve logs").click()
        row.get_by_label("Period from (UTC)").fill(since)
        row.get_by_label("Period until (UTC)").fill(until)
        row.get_by_label("Maximum size (KB)").fill(str(max_kb))
        self.shot_page("logs-dialog")
        row.get_by_role("button", name="Request logs").click()
        page.get_by_text(f"{serial}: logs requested").wait_for()
        link = page.locator("#commands").get_by_role(
            "link", name=re.compile("Download log archive")).first
        link.wait_for(timeout=timeout * 1000)
        self.shot_page("logs-ready")
        with page.expect_download() as download:
            link.click()
        return Path(download.value.path()).read_bytes()

    @step
    def reset_db(self, serial: str, timeout: float = 30.0) -> str:
        """Reset local database, confirmed; the result line the page shows when it is done."""
        row = self._monitor(serial)
        page = self.operator.page
        results = page.locator("#commands li").filter(has_text=serial).filter(
            has_text="reset db").filter(has_text=re.compile("done|failed"))
        earlier = set(results.all_inner_texts())  # a shared rig's page lists earlier resets
        row.get_by_text("Actions").click()
        row.get_by_label(re.compile(f"Reset the local database of {serial}")).check()
        row.get_by_role("button", name="Reset local database").click()
        page.get_by_text(f"{serial}: reset of the local database sent").wait_for()
        deadline = time.monotonic() + timeout
        while True:
            new = [text for text in results.all_inner_texts() if text not in earlier]
            if new:
                self.shot_page("reset-db")
                return new[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no result of the reset of {serial} within {timeout:g} s")
            page.wait_for_timeout(100)  # the page refreshes the panel by itself (polling)

    def shot_page(self, name: str) -> None:
        self.operator.shot(name)
