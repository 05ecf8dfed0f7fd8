"""A wrong wall clock for one simulated terminal: libfaketime preloaded into its agent.

A Raspberry Pi has no real-time clock: until NTP answers it may run hours or years off. The rig
reproduces that by starting the agent with LD_PRELOAD=libfaketimeMT and a relative offset, so
time.time(), datetime.now() and OpenSSL's certificate checks see the shifted clock. Monotonic
clocks are left alone (FAKETIME_DONT_FAKE_MONOTONIC): timeouts and backoff behave as on a real
device, whose monotonic clock is right even when its calendar is not.
"""

from __future__ import annotations

import glob
import math
from pathlib import Path

PACKAGE = "libfaketime"
# ±20 years covers every clock a Pi boots with (1970 is ~56 years back: a reset clock is
# better simulated by an absolute date, which this fault does not offer).
MAX_OFFSET = 20 * 366 * 86400
VARIABLES = ("LD_PRELOAD", "FAKETIME", "FAKETIME_DONT_FAKE_MONOTONIC")


class ClockSkewError(ValueError):
    """The offset cannot be applied; str() says why."""


def library() -> Path | None:
    """libfaketime's thread-safe variant (the agent runs threads), or None when not installed."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    return Path(found[0]) if found else None


def parse_offset(value: object) -> int:
    """Whole seconds, within ±MAX_OFFSET; ClockSkewError naming the problem otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ClockSkewError(f"clock_offset must be a number of seconds, not {value!r}")
    if abs(value) > MAX_OFFSET:
        raise ClockSkewError(f"clock_offset {value:g} s is beyond ±{MAX_OFFSET} s (20 years)")
    return int(value)


def environment(offset: int) -> dict[str, str]:
    """The variables that shift a process's wall clock by `offset` seconds ({} for 0)."""
    if offset == 0:
        return {}
    lib = library()
    if lib is None:
        raise ClockSkewError(f"a clock offset needs libfaketime (Debian package {PACKAGE}: "
                             f"apt-get install {PACKAGE})")
    return {"LD_PRELOAD": str(lib), "FAKETIME": f"{offset:+d}",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
