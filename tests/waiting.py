"""Waiting for a condition instead of sleeping a fixed time: one helper for every unit test."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 10.0,
             what: str | Callable[[], str] = "condition") -> T:
    """Poll `condition` until it returns something truthy, and return that. `what` names the
    condition in the failure; a callable is asked at that moment (to show what was seen)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {described}")
        time.sleep(0.01)
