"""A batch's terminal_status rows: read in one query, written in bulk at the end of the batch.

Status is most of a fleet's traffic (every terminal, every heartbeat), so it skips the ORM's
per-object work (bench: ≈ 180 → ≈ 60 CPU-µs per status on SQLite, docs/deployment.md): the
batch reads the fields it compares (HISTORY_FIELDS) for all its terminals at once, keeps them
as plain values while it applies the batch's statuses in order, and writes one INSERT for
terminals without a row yet and one executemany UPDATE by primary key per shape of values.
The latest status wins; the row is the terminal's one current status (the upsert), and the
history gets a row only when a compared field changed.
"""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from server.db.master import TerminalStatus

HISTORY_FIELDS = ("online", "version", "slot", "state", "screen", "last_update",
                  "last_sync_error")


class StatusRows:
    def __init__(self, session: Session, serials: set[str]):
        self._session = session
        columns = [getattr(TerminalStatus, name) for name in HISTORY_FIELDS]
        self._current: dict[str, dict] = {}
        if serials:
            for serial, *values in session.execute(
                    select(TerminalStatus.serial, *columns)
                    .where(TerminalStatus.serial.in_(serials))):
                self._current[serial] = dict(zip(HISTORY_FIELDS, values, strict=True))
        self._inserts: dict[str, dict] = {}
        self._updates: dict[str, dict] = {}

    def apply(self, serial: str, values: dict) -> bool:
        """Take a status's values (column → value); whether a compared field changed."""
        current = self._current.get(serial)
        if current is None:
            current = self._current[serial] = dict.fromkeys(HISTORY_FIELDS)
            current["online"] = False
            self._inserts[serial] = {"serial": serial, "online": False, "rejected": 0}
        before = dict(current)
        current.update((k, v) for k, v in values.items() if k in current)
        pending = self._inserts.get(serial)
        if pending is not None:
            pending.update(values)
        else:
            self._updates.setdefault(serial, {"serial": serial}).update(values)
        return current != before

    def reject(self, serial: str, reason: str) -> None:
        """Count a refused message on the terminal's row (rare: written at once)."""
        if serial not in self._current:
            self.apply(serial, {})
        pending = self._inserts.get(serial)
        if pending is not None:
            pending["rejected"] = pending.get("rejected", 0) + 1
            pending["last_reject"] = reason
            return
        self._session.execute(
            update(TerminalStatus).where(TerminalStatus.serial == serial)
            .values(rejected=TerminalStatus.rejected + 1, last_reject=reason))

    def write(self) -> None:
        if self._inserts:
            self._session.execute(insert(TerminalStatus), list(self._inserts.values()))
        shapes: dict[tuple, list[dict]] = {}
        for values in self._updates.values():
            shapes.setdefault(tuple(sorted(values)), []).append(values)
        for rows in shapes.values():
            self._session.execute(update(TerminalStatus), rows)  # by primary key, executemany
        self._inserts.clear()
        self._updates.clear()
