"""Shared by the rig's own unit tests (tests/test_sim_*.py): prerequisites that skip outside CI
and fail in CI (architecture §6), with a message naming what to install."""

from __future__ import annotations

import os

import pytest

from sim import prereqs


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"prerequisite missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require_root() -> None:
    if not prereqs.is_root():
        unavailable("needs root to create network namespaces (run the tests as root)")


def require_binaries(*names: str) -> None:
    missing = prereqs.missing_binaries(list(names))
    if missing:
        unavailable("needs " + ", ".join(str(m) for m in missing)
                    + f": `{prereqs.install_hint(missing)}`")
