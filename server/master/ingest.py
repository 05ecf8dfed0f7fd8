"""Storing what terminals send over MQTT: status, events, command results.

Every `ingest` is one transaction over a batch of messages. A bad payload is refused with a
sentence (counted on the terminal's status row, never a crash), and nothing already stored is
touched: every message is checked whole before anything of it is written, so a refusal needs no
savepoint. A batch reads the rows it needs in one query (its terminals and their status rows)
instead of two per message; the status row is updated in place (the latest status only, one row
per terminal, written in bulk: master/status_rows.py), and a history row is added only when a
compared field changed. The history is bounded: rows older than the retention (RETENTION_DAYS,
`batm-server run --history-days`) are deleted once an hour by the ingest worker
(`prune_history`).

Events are stored idempotently by their terminal-made id, so a QoS 1 redelivery — or a
terminal re-sending an event it has no acknowledgement for — never makes a duplicate; a batch's
events are written together once all its messages are checked (master/event_rows.py). `ingest`
says which events are stored (new or already there), so that the server can acknowledge them to
the terminal once the transaction has committed (master/link.py).
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from batm_common.clock import utcnow
from server.db.master import Command, StatusHistory
from server.db.terminals import Terminal
from server.master import payloads
from server.master.dynsec import TERMINAL_SENDS
from server.master.event_rows import EventRows
from server.master.ingest_stats import parse_at
from server.master.options import RETENTION_DAYS
from server.master.payloads import EVENT_ID, PayloadError
from server.master.status_rows import StatusRows
from server.notify import command_topic, status_topic
from server.pairing.views import iso

log = logging.getLogger("batm-server.master")

KINDS = TERMINAL_SENDS  # what terminals publish (the broker lets them publish only these)
# The database away, locked or restarting: the same batch will be stored once it is back.
TRANSIENT = (OperationalError, InterfaceError)
# Failures of a batch with any other error (the same one again, in practice: a message the
# database refuses whatever we do) before its messages are stored one at a time.
SPLIT_AFTER = 3


@dataclass
class Ingested:
    """What one `ingest` did: how many messages were refused, and per terminal the ids of the
    events that are now stored (new ones and ones already stored alike), in arrival order."""

    refused: int = 0
    events: dict[str, list[str]] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)  # messages stored, per kind
    status_at: list[float] = field(default_factory=list)  # the `at` of each stored status

    def add(self, other: Ingested) -> None:
        self.refused += other.refused
        for serial, ids in other.events.items():
            self.events.setdefault(serial, []).extend(ids)
        for kind, count in other.stored.items():
            self.stored[kind] = self.stored.get(kind, 0) + count
        self.status_at.extend(other.status_at)


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
        messages = list(messages)
        with self._sessions() as session, session.begin(), session.no_autoflush:
            self._prefetch(session, {m.serial for m in messages})
            events = session.info["event_rows"] = EventRows(session)
            for message in messages:
                try:
                    self._ingest_one(session, message, now, wake, done)
                except PayloadError as exc:
                    self._refuse(session, message.serial, message.kind, str(exc), now, wake,
                                 done)
            for outcome in events.write():
                if outcome.stored:
                    stored.append((outcome.serial, outcome.event_id))
                    done.stored["events"] = done.stored.get("events", 0) + 1
                else:
                    self._refuse(session, outcome.serial, "events",
                                 f"event: id {outcome.event_id!r} belongs to another terminal",
                                 now, wake, done)
            self._rows(session).write()
        for serial, event_id in dict.fromkeys(stored):  # a batch may hold a re-send twice
            done.events.setdefault(serial, []).append(event_id)
        for topic in dict.fromkeys(wake):
            self._notify(topic)
        return done

    def ingest_until_stored(self, messages: list[Incoming],
                            sleep: Callable[[float], None] = time.sleep) -> Ingested:
        """`ingest`, retried until the database takes the batch: an unacknowledged message
        would only come back after a reconnect, so giving up on a batch is never the answer.
        (SQLite answers "database is locked" at once when a read transaction must become a
        write one while the gate writes; a moment later it works.)

        Except for a message the database refuses every time, which the payload checks did not
        foresee: retried for ever, one such message stopped the replica's whole ingestion. A
        batch that fails SPLIT_AFTER times with anything but the database being away is
        stored one message at a time, and a single message that keeps failing is dropped
        (logged with its terminal and counted as refused), so the rest is stored."""
        delay, failures = 0.02, 0
        while True:
            try:
                return self.ingest(messages)
            except Exception as exc:
                if not isinstance(exc, TRANSIENT):
                    failures += 1
                    if failures >= SPLIT_AFTER:
                        return self._apart(messages, exc, sleep)
                if delay >= 1.0:
                    log.warning("master: storing %d message(s) failed (%s); retrying",
                                len(messages), exc.__class__.__name__)
                sleep(delay)
                delay = min(delay * 2, 2.0)

    def _apart(self, messages: list[Incoming], exc: Exception,
               sleep: Callable[[float], None]) -> Ingested:
        if len(messages) == 1:
            message = messages[0]
            log.error("master: dropped a %s message of %s that the database refuses every "
                      "time (%s: %s)", message.kind, message.serial, exc.__class__.__name__,
                      (str(exc).splitlines() or [""])[0][:300])
            return Ingested(refused=1)
        done = Ingested()
        for message in messages:
            done.add(self.ingest_until_stored([message], sleep))
        return done

    def prune_history(self, days: float = RETENTION_DAYS) -> int:
        """Delete status history older than `days`; how many rows went."""
        cutoff = self._clock() - datetime.timedelta(days=days)
        with self._sessions() as session, session.begin():
            return session.execute(
                delete(StatusHistory).where(StatusHistory.received_at < cutoff)).rowcount

    @staticmethod
    def _prefetch(session: Session, serials: set[str]) -> None:
        """Read the batch's terminals and status rows once, in one query (session.info holds
        them for the batch), instead of asking the database once per message."""
        rows = session.info["status_rows"] = StatusRows(session, serials)
        session.info["terminals"] = rows.known

    @staticmethod
    def _known(session: Session, serial: str) -> bool:
        known = session.info.get("terminals")
        if known is not None:
            return serial in known
        return session.get(Terminal, serial) is not None

    def _refuse(self, session: Session, serial: str, kind: str, reason: str,
                now: datetime.datetime, wake: list[str], done: Ingested) -> None:
        done.refused += 1
        log.warning("refused %s from %s: %s", kind, serial, reason)
        self._reject(session, serial, reason, now)
        wake.append(status_topic(serial))

    def _ingest_one(self, session: Session, message: Incoming, now: datetime.datetime,
                    wake: list[str], done: Ingested) -> None:
        """Store one message (or raise PayloadError having written nothing of it). An event is
        only checked here: the batch's events are written, and counted, together at its end."""
        if message.kind == "status" and not message.payload:
            return  # the server's own clearing of a retained status (after an unpair)
        if not self._known(session, message.serial):
            raise PayloadError(f"no terminal {message.serial!r} on this server")
        if message.kind == "status":
            at = self._store_status(session, message, now)
            if at is not None:
                done.status_at.append(at)
            wake.append(status_topic(message.serial))
        elif message.kind == "events":
            session.info["event_rows"].add(self._event_row(message, now))
            return
        elif message.kind == "results":
            wake.append(self._store_result(session, message, now))
        else:
            raise PayloadError(f"unknown topic kind {message.kind!r}")
        done.stored[message.kind] = done.stored.get(message.kind, 0) + 1

    @staticmethod
    def _rows(session: Session) -> StatusRows:
        rows = session.info.get("status_rows")
        if rows is None:
            rows = session.info["status_rows"] = StatusRows(session, set())
        return rows

    def _store_status(self, session: Session, message: Incoming,
                      now: datetime.datetime) -> float | None:
        """Update the terminal's status row (checked whole first); the status's `at` as POSIX
        time, when it has one."""
        what = "status"
        data = payloads.parse(message.payload, what)
        serial = payloads.field(data, "serial", str, what)
        if serial is not None and serial != message.serial:
            raise PayloadError(f"status: serial {serial!r} does not match the topic")
        online = payloads.field(data, "online", bool, what)
        values: dict = {"online": bool(online) if online is not None else True}
        if online is not False or len(data) > 1:
            values |= {
                "version": payloads.field(data, "version", int, what),
                "slot": payloads.field(data, "slot", str, what, max_len=32),
                "state": payloads.field(data, "state", str, what, max_len=64),
                "screen": payloads.field(data, "screen", str, what, max_len=64),
                "last_update": payloads.field(data, "last_update", str, what, max_len=40),
                "last_sync": payloads.field(data, "last_sync", str, what, max_len=40),
                "last_sync_error": payloads.field(data, "last_sync_error", str, what),
                "uptime": payloads.field(data, "uptime", (int, float), what),
                "vpn_handshake_age": payloads.field(data, "vpn_handshake_age", (int, float),
                                                    what),
                "outbox_pending": payloads.field(data, "outbox_pending", int, what),
                "reported_at": payloads.field(data, "at", str, what, max_len=40),
            }
        values["received_at"] = now
        rows = self._rows(session)
        if rows.apply(message.serial, values):
            rows.add_history(message.serial, now, json.dumps(data, sort_keys=True))
        return parse_at(data.get("at"))

    @staticmethod
    def _event_row(message: Incoming, now: datetime.datetime) -> dict:
        """The event's row, checked whole (PayloadError otherwise)."""
        what = "event"
        data = payloads.parse(message.payload, what)
        event_id = payloads.field(data, "id", str, what, optional=False, max_len=64)
        if not EVENT_ID.match(event_id):
            raise PayloadError("event: id must be 1-64 letters, digits, '-' or '_'")
        event_type = payloads.field(data, "type", str, what, optional=False, max_len=100)
        at = payloads.field(data, "at", str, what, max_len=40)
        return {"event_id": event_id, "serial": message.serial, "type": event_type, "at": at,
                "data": json.dumps(data.get("data")), "received_at": now}

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
        if not self._known(session, serial):
            return
        self._rows(session).reject(serial, f"{iso(now)} {reason}"[:500])
