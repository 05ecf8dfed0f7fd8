"""ConsoleDriver: the operator's side through the console's pages in a real Chromium (the
server's namespace when the rig has one), as an operator of every location it makes.

Each public call is a traced step; the browser steps themselves are sim/console_walk.py's, the
same the demo walks.
"""

from __future__ import annotations

import secrets
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
