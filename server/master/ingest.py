"""Storing what terminals send over MQTT: status, events, command results.

Every `ingest` is one transaction over a batch of messages. A bad payload is refused with a
sentence (counted on the terminal's status row, never a crash), and nothing already stored is
touched. Events are stored idempotently by their terminal-made id, so a QoS 1 redelivery — or a
terminal re-sending an event it has no acknowledgement for — never makes a duplicate. `ingest`
says which events are stored (new or already there), so that the server can acknowledge them to
the terminal once the transaction has committed (master/link.py).
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from batm_common.clock import utcnow
from server.db.dialect import insert_unless_present
from server.db.master import Command, StatusHistory, TerminalEvent, TerminalStatus
from server.db.terminals import Terminal
from server.master import payloads
from server.master.payloads import EVENT_ID, PayloadError
from server.notify import command_topic, status_topic
from server.pairing.views import iso

log = logging.getLogger("batm-server.master")

# Changes in these make a history row; uptime, handshake age and the like only refresh the row.
HISTORY_FIELDS = ("online", "version", "slot", "state", "screen", "last_update",
                  "last_sync_error")
KINDS = ("status", "events", "results")  # the topics terminals publish: terminals/<serial>/<kind>


@dataclass
class Ingested:
    """What one `ingest` did: how many messages were refused, and per terminal the ids of the
    events that are now stored (new ones and ones already stored alike), in arrival order."""

    refused: int = 0
    events: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Incoming:
    """One MQTT message from a terminal, as the server's client hands it over."""

    serial: str
    kind: str  # one of KINDS
    payload: bytes


class Ingest:
    def __init__(self, sessions: sessionmaker, notify: Callable[[str], None] | None = None,
                 clock: Callable[[], datetime.datetime] = utcnow):
        self._sessions = sessions
        self._notify = notify or (lambda _topic: None)
        self._clock = clock

    def ingest(self, messages: Iterable[Incoming]) -> Ingested:
        """Store a batch in one transaction. Commit, then wake; what was stored is returned
        only once it is committed (an exception means nothing of the batch is)."""
        wake: list[str] = []
        done = Ingested()
        stored: list[tuple[str, str]] = []
        now = self._clock()
        with self._sessions() as session, session.begin():
            for message in messages:
                try:
                    with session.begin_nested():
                        event_id = self._ingest_one(session, message, now, wake)
                    if event_id is not None:
                        stored.append((message.serial, event_id))
                except PayloadError as exc:
                    done.refused += 1
                    log.warning("refused %s from %s: %s", message.kind, message.serial, exc)
                    self._reject(session, message.serial, str(exc), now)
                    wake.append(status_topic(message.serial))
        for serial, event_id in dict.fromkeys(stored):  # a batch may hold a re-send twice
            done.events.setdefault(serial, []).append(event_id)
        for topic in dict.fromkeys(wake):
            self._notify(topic)
        return done

    def _ingest_one(self, session: Session, message: Incoming, now: datetime.datetime,
                    wake: list[str]) -> str | None:
        """Store one message; the event id when it is an event."""
        if session.get(Terminal, message.serial) is None:
            raise PayloadError(f"no terminal {message.serial!r} on this server")
        if message.kind == "status":
            self._store_status(session, message, now)
            wake.append(status_topic(message.serial))
        elif message.kind == "events":
            return self._store_event(session, message, now)
        elif message.kind == "results":
            wake.append(self._store_result(session, message, now))
        else:
            raise PayloadError(f"unknown topic kind {message.kind!r}")
        return None

    def _status_row(self, session: Session, serial: str) -> TerminalStatus:
        row = session.get(TerminalStatus, serial)
        if row is None:
            row = TerminalStatus(serial=serial, online=False, rejected=0)
            session.add(row)
        return row

    def _store_status(self, session: Session, message: Incoming, now: datetime.datetime) -> None:
        if not message.payload:
            return  # the retained status was cleared (after an unpair)
        what = "status"
        data = payloads.parse(message.payload, what)
        serial = payloads.field(data, "serial", str, what)
        if serial is not None and serial != message.serial:
            raise PayloadError(f"status: serial {serial!r} does not match the topic")
        online = payloads.field(data, "online", bool, what)
        row = self._status_row(session, message.serial)
        before = {name: getattr(row, name) for name in HISTORY_FIELDS}
        row.online = bool(online) if online is not None else True
        if online is not False or len(data) > 1:
            row.version = payloads.field(data, "version", int, what)
            row.slot = payloads.field(data, "slot", str, what, max_len=32)
            row.state = payloads.field(data, "state", str, what, max_len=64)
            row.screen = payloads.field(data, "screen", str, what, max_len=64)
            row.last_update = payloads.field(data, "last_update", str, what, max_len=40)
            row.last_sync = payloads.field(data, "last_sync", str, what, max_len=40)
            row.last_sync_error = payloads.field(data, "last_sync_error", str, what)
            row.uptime = payloads.field(data, "uptime", (int, float), what)
            row.vpn_handshake_age = payloads.field(data, "vpn_handshake_age", (int, float), what)
            row.outbox_pending = payloads.field(data, "outbox_pending", int, what)
            row.reported_at = payloads.field(data, "at", str, what, max_len=40)
        row.received_at = now
        after = {name: getattr(row, name) for name in HISTORY_FIELDS}
        if after != before:
            session.add(StatusHistory(serial=message.serial, received_at=now,
                                      status=json.dumps(data, sort_keys=True)))

    def _store_event(self, session: Session, message: Incoming, now: datetime.datetime) -> str:
        what = "event"
        data = payloads.parse(message.payload, what)
        event_id = payloads.field(data, "id", str, what, optional=False, max_len=64)
        if not EVENT_ID.match(event_id):
            raise PayloadError("event: id must be 1-64 letters, digits, '-' or '_'")
        event_type = payloads.field(data, "type", str, what, optional=False, max_len=100)
        at = payloads.field(data, "at", str, what, max_len=40)
        inserted = session.execute(insert_unless_present(
            TerminalEvent, ["event_id"], event_id=event_id, serial=message.serial,
            type=event_type, at=at, data=json.dumps(data.get("data")), received_at=now,
        )).rowcount
        if not inserted:  # a redelivery: acknowledged again, unless the id is someone else's
            owner = session.scalar(select(TerminalEvent.serial)
                                   .where(TerminalEvent.event_id == event_id))
            if owner != message.serial:
                raise PayloadError(f"event: id {event_id!r} belongs to another terminal")
        return event_id

    def _store_result(self, session: Session, message: Incoming, now: datetime.datetime) -> str:
        what = "result"
        data = payloads.parse(message.payload, what)
        command_id = payloads.field(data, "command_id", str, what, max_len=64)
        ok = payloads.field(data, "ok", bool, what, optional=False)
        error = payloads.field(data, "error", str, what)
        if command_id is None:
            # A command the terminal could not even read (malformed payload): keep the error.
            self._reject(session, message.serial, f"terminal refused a command: {error}", now)
            return status_topic(message.serial)
        command = session.get(Command, command_id)
        if command is None or command.serial != message.serial:
            raise PayloadError(f"result: no command {command_id!r} for this terminal")
        if command.finished_at is None:
            command.ok = ok
            command.error = error
            result = data.get("result")
            command.result = json.dumps(result) if result is not None else None
            command.finished_at = now
        return command_topic(command_id)

    def _reject(self, session: Session, serial: str, reason: str, now: datetime.datetime) -> None:
        if session.get(Terminal, serial) is None:
            return
        row = self._status_row(session, serial)
        row.rejected = (row.rejected or 0) + 1
        row.last_reject = f"{iso(now)} {reason}"[:500]
