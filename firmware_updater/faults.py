"""Deterministic crash points for the power-cut tests (no sleeps, no races).

BATM_FW_CRASH_AT=<state>      SIGKILL right after the journal records <state>, before its action
BATM_FW_CRASH_AT=offset:<N>   SIGKILL once N payload bytes have been written to the slot
                              (N need not be a checkpoint: the bytes after the last checkpoint
                              are exactly what a power cut would leave behind)
Unset in production; reading one environment variable is the whole cost.
"""

from __future__ import annotations

import os
import signal

ENV = "BATM_FW_CRASH_AT"


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        _die()


def crash_offset() -> int | None:
    value = os.environ.get(ENV, "")
    if value.startswith("offset:") and value[7:].isdigit():
        return int(value[7:])
    return None


die = _die
