"""A real Chromium for the console's browser tests: Debian's `chromium` driven by Playwright
(launched with executable_path; `playwright install` is never needed), and a console served
over HTTPS on loopback from a thread.

Without Chromium or Playwright the tests skip with a message; in CI (CI set) they fail, so a
broken set-up cannot pass unnoticed.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from server.ca import ensure_certificates

CHROMIUM = os.environ.get("BATM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the browser tests; see scripts/install-system-deps)")
    pytest.skip(f"{reason}; install it with scripts/install-system-deps and "
                "`pip install -e '.[dev]'`")


def launch_chromium() -> Iterator:
    """Yields a Playwright Browser on Debian's Chromium, headless."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed")
    if not Path(CHROMIUM).is_file():
        _unavailable(f"Chromium is not installed ({CHROMIUM} is missing)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


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
