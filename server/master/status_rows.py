"""A batch's terminal_status rows: read in one query, written in bulk at the end of the batch.

Status is most of a fleet's traffic (every terminal, every heartbeat), so it skips the ORM
entirely: one Core query reads, for all the batch's serials at once, whether the terminal exists
and the fields the batch compares (HISTORY_FIELDS) from its status row (an outer join: one round
trip, where PostgreSQL is another process); the batch applies its statuses in order to these
plain values, then writes one multi-row INSERT for terminals without a row yet and one UPDATE by
primary key per shape of values (server/db/dialect.py's update_by_key: one statement over
arrays on PostgreSQL, executemany on SQLite). The ORM's bulk UPDATE spent more CPU sorting the
rows out than the database spent storing them (bench/ingest_cost.py, docs/deployment.md).
The latest status wins; the row is the terminal's one current status (the upsert), and the
history gets a row only when a compared field changed — written with the batch too, one
executemany, not an ORM object each (a fleet's first statuses, or a fleet-wide upgrade, make a
history row for every terminal).
"""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from server.db.dialect import key_in, update_by_key
from server.db.master import StatusHistory, TerminalStatus
from server.db.terminals import Terminal

HISTORY_FIELDS = ("online", "version", "slot", "state", "screen", "last_update",
                  "last_sync_error")
STATUS = TerminalStatus.__table__
HISTORY = StatusHistory.__table__


class StatusRows:
    def __init__(self, session: Session, serials: set[str]):
        """Read the batch's terminals and their status rows; `known` says which exist."""
        self._session = session
        self.known: set[str] = set()
        self._current: dict[str, dict] = {}
        if serials:
            terminals = Terminal.__table__
            columns = [STATUS.c[name] for name in HISTORY_FIELDS]
            query = (select(terminals.c.serial, STATUS.c.serial.label("has_row"), *columns)
                     .select_from(terminals.outerjoin(STATUS,
                                                      STATUS.c.serial == terminals.c.serial)))
            connection = session.connection()
            query = query.where(key_in(connection.dialect.name, terminals.c.serial, serials))
            for serial, has_row, *values in connection.execute(query).all():
                self.known.add(serial)
                if has_row is not None:
                    self._current[serial] = dict(zip(HISTORY_FIELDS, values, strict=True))
        self._inserts: dict[str, dict] = {}
        self._updates: dict[str, dict] = {}
        self._history: list[dict] = []

    def apply(self, serial: str, values: dict) -> bool:
        """Take a status's values (column → value); whether a compared field changed."""
        current = self._current.get(serial)
        if current is None:
            current = self._current[serial] = dict.fromkeys(HISTORY_FIELDS)
            current["online"] = False
            self._inserts[serial] = {"serial": serial, "online": False, "rejected": 0}
        changed = False
        for name in HISTORY_FIELDS:
            if name in values and values[name] != current[name]:
                current[name] = values[name]
                changed = True
        pending = self._inserts.get(serial)
        if pending is not None:
            pending.update(values)
        else:
            self._updates.setdefault(serial, {"serial": serial}).update(values)
        return changed

    def add_history(self, serial: str, received_at, status: str) -> None:
        """A history row (the status as JSON), written with the batch."""
        self._history.append({"serial": serial, "received_at": received_at, "status": status})

    def reject(self, serial: str, reason: str) -> None:
        """Count a refused message on the terminal's row (rare: written at once)."""
        if serial not in self._current:
            self.apply(serial, {})
        pending = self._inserts.get(serial)
        if pending is not None:
            pending["rejected"] = pending.get("rejected", 0) + 1
            pending["last_reject"] = reason
            return
        self._session.connection().execute(
            update(STATUS).where(STATUS.c.serial == serial)
            .values(rejected=STATUS.c.rejected + 1, last_reject=reason))

    def write(self) -> None:
        connection = self._session.connection()
        inserts: dict[tuple, list[dict]] = {}
        for values in self._inserts.values():
            inserts.setdefault(tuple(sorted(values)), []).append(values)
        for rows in inserts.values():
            connection.execute(insert(STATUS), rows)
        updates: dict[tuple, list[dict]] = {}
        for values in self._updates.values():
            updates.setdefault(tuple(sorted(values)), []).append(
                {name: values[name] for name in sorted(values)})
        for rows in updates.values():
            update_by_key(connection, STATUS, "serial", rows)
        if self._history:
            connection.execute(insert(HISTORY), self._history)
        self._inserts.clear()
        self._updates.clear()
        self._history.clear()
