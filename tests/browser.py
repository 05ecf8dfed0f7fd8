"""A real Chromium for the console's browser tests: Debian's `chromium` driven by Playwright
(launched with executable_path; `playwright install` is never needed), and a console served
over HTTPS on loopback from a thread.

Without Chromium or Playwright the tests skip with a message; in CI (CI set) they fail, so a
broken set-up cannot pass unnoticed.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from server.ca import ensure_certificates
from sim.browser import chromium, chromium_problem
from sim.testsupport import unavailable


def launch_chromium() -> Iterator:
    """Yields a Playwright Browser on Debian's Chromium; skips (fails in CI) without one."""
    problem = chromium_problem()
    if problem:
        unavailable(problem)
    with chromium() as browser:
        yield browser


def new_page(browser, tmp_path: Path, width: int = 1200) -> Iterator:
    """A page in a context of its own (cookies apart), trusting the test CA's leaf; its last
    screen is left in `tmp_path`/last.png for a failure's post-mortem."""
    context = browser.new_context(ignore_https_errors=True,
                                  viewport={"width": width, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    page.screenshot(path=tmp_path / "last.png", full_page=True)
    context.close()


class ServedApp:
    """An ASGI app served over HTTPS on 127.0.0.1 from a thread, with the server CA's leaf."""

    def __init__(self, app, cert_dir: Path):
        certs = ensure_certificates(cert_dir, ["127.0.0.1", "localhost"])
        self.ca = certs.ca_cert_path
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(
            app, ssl_certfile=os.fspath(certs.leaf_cert_path),
            ssl_keyfile=os.fspath(certs.leaf_key_path), log_config=None, access_log=False,
            lifespan="off", ws="none"))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the console did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()
