"""The terminal's status on the master service: terminals/<serial>/status, retained, QoS 1.

Published when it changes (state, screen, sync fields, …) and on a heartbeat (30 s by default)
so that uptime and the VPN handshake age stay fresh. The last will sets {"online": false}.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable
from pathlib import Path

from agent.hardware import active_slot
from batm_common.clock import iso_ms, utcnow

HEARTBEAT = 30.0
VOLATILE = ("uptime", "vpn_handshake_age", "at")  # a change in these alone is no "change"


def last_firmware_update(slots_dir: Path) -> str | None:
    """When the active slot was switched to (the `active` link's own mtime), ISO UTC."""
    try:
        stamp = os.lstat(Path(slots_dir) / "active").st_mtime
    except OSError:
        return None
    return iso_ms(datetime.datetime.fromtimestamp(stamp, datetime.UTC))


def build_status(*, serial: str, version: int, slots_dir: Path, state: str, screen: str | None,
                 last_sync: str | None, last_sync_error: str | None, uptime: float,
                 vpn_handshake_age: float | None, outbox_pending: int) -> dict:
    return {
        "online": True,
        "serial": serial,
        "version": version,
        "slot": active_slot(slots_dir),
        "state": state,
        "screen": screen,
        "last_update": last_firmware_update(slots_dir),
        "last_sync": last_sync,
        "last_sync_error": last_sync_error,
        "uptime": round(uptime, 1),
        "vpn_handshake_age": vpn_handshake_age,
        "outbox_pending": outbox_pending,
        "at": iso_ms(utcnow()),
    }


class StatusReporter:
    """Decides when to publish: on a change of the non-volatile fields, or when forced."""

    def __init__(self, build: Callable[[], dict], publish: Callable[[bytes], int | None]):
        self._build = build
        self._publish = publish
        self._last: dict | None = None
        self.published = 0

    def forget(self) -> None:
        """A new connection: the next report goes out whatever it holds."""
        self._last = None

    def report(self, force: bool = False) -> bool:
        status = self._build()
        significant = {k: v for k, v in status.items() if k not in VOLATILE}
        if not force and significant == self._last:
            return False
        if self._publish(json.dumps(status).encode()) is None:
            return False
        self._last = significant
        self.published += 1
        return True
