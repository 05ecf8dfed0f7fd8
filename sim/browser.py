"""Debian's Chromium driven by Playwright for Python: the demo's console walk and the console's
browser tests. Launched by path (`playwright install` is never needed, nor possible offline);
for a rig in namespaces, inside the server's namespace through a wrapper running it under
`ip netns exec` (the console listens only there; Playwright's pipe survives the exec).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = os.environ.get("BATM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def chromium_problem() -> str | None:
    """None when a browser can be launched, else a sentence saying what to install."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).is_file():
        return (f"Chromium is not installed ({CHROMIUM} is missing; "
                "scripts/install-system-deps installs Debian's chromium)")
    return None


def _in_netns(netns: str, work_dir: Path) -> str:
    wrapper = work_dir / f"chromium-in-{netns}"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {netns} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return os.fspath(wrapper)


@contextlib.contextmanager
def chromium(netns: str | None = None, work_dir: Path | None = None) -> Iterator:
    """A headless Playwright Browser on Debian's Chromium (in `netns` when given)."""
    from playwright.sync_api import sync_playwright

    executable = CHROMIUM
    if netns is not None:
        assert work_dir is not None, "the namespace wrapper needs a directory"
        executable = _in_netns(netns, work_dir)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
