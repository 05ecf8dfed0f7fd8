"""A batch's events: checked one by one, written together at the end of the batch.

An event used to be one INSERT … ON CONFLICT DO NOTHING of its own, and a redelivered one a
SELECT more: on PostgreSQL a round trip each. When a fleet's events came together (every
terminal's outbox after an outage; the fleet simulator's every sixth beat) the ingest worker
spent ≈ 400 CPU-µs per event and fell seconds behind (bench/ingest_cost.py --events-every 2,
docs/deployment.md). Here a batch's events are one multi-row INSERT that skips ids already
stored and returns the ids it inserted; only ids that were stored already (redeliveries) are
looked up, in one query, for their owner. An id stored by this terminal is stored (new, or a
redelivery acknowledged again), one stored by another terminal is refused — as before, only
now per batch.

Within a batch the first message with an id wins: a terminal's re-send of it is acknowledged
with it, another terminal's use of it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db.dialect import key_in, rows_unless_present
from server.db.master import TerminalEvent

EVENTS = TerminalEvent.__table__


@dataclass(frozen=True)
class EventOutcome:
    """One event message once its batch is written: stored (new or already there) or not."""

    serial: str
    event_id: str
    stored: bool


class EventRows:
    def __init__(self, session: Session):
        self._session = session
        self._messages: list[tuple[str, str]] = []  # (serial, event id), in arrival order
        self._rows: dict[str, dict] = {}  # event id → the first row that carried it

    def add(self, row: dict) -> None:
        """Take an event already checked whole (the `events` table's columns)."""
        self._messages.append((row["serial"], row["event_id"]))
        self._rows.setdefault(row["event_id"], row)

    def write(self) -> list[EventOutcome]:
        """Store the batch's new events; per message, in arrival order, whether it is stored."""
        if not self._messages:
            return []
        connection = self._session.connection()
        inserted = rows_unless_present(connection, EVENTS, "event_id", list(self._rows.values()))
        owners = {event_id: row["serial"] for event_id, row in self._rows.items()
                  if event_id in inserted}
        already = [event_id for event_id in self._rows if event_id not in inserted]
        if already:  # redeliveries (or another terminal's id): whose they are
            owners |= dict(connection.execute(
                select(EVENTS.c.event_id, EVENTS.c.serial)
                .where(key_in(connection.dialect.name, EVENTS.c.event_id, already))).all())
        outcomes = [EventOutcome(serial, event_id, owners.get(event_id) == serial)
                    for serial, event_id in self._messages]
        self._messages.clear()
        self._rows.clear()
        return outcomes
