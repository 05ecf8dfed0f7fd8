"""Suite-wide machinery for tests/ (and hil_tests/, which registers the same plugin):

every test is marked `terminal` or `server` from what its module really needs, and a module whose
extra is not installed is left out unimported, with one line saying what to install
(tests/module_needs.py reads the needs from the code). `pytest -m terminal` is what a terminal
without the server extra runs.
"""

from __future__ import annotations

import module_needs
import pytest


def pytest_configure(config: pytest.Config) -> None:
    module_needs.register(config)
