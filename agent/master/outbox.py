"""The terminal's local database (state_dir/local.db, SQLite WAL) and its event outbox.

An event is committed (synchronous=FULL) before `record` returns and published at QoS 1. Its
broker PUBACK only marks it *sent*; it is deleted when the **server** names it in an
acknowledgement (terminals/<serial>/acks, sent after the server's database committed it). So an
event survives agent restarts, power cuts, broker outages and a broker that dies before saving
its persistence file: whatever the server has not confirmed is published again — after every
(re)connect, and when a sent event stays unconfirmed for `RESEND_AFTER` seconds. At worst an
event is sent twice; the server stores events by id, so twice is once.

`OutboxPump` is the publishing logic without I/O: the daemon gives it a `publish` function (the
MQTT link) and feeds it PUBACKs, server acknowledgements, clock ticks and connection changes;
tests drive it with fakes.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batm_common.clock import iso_ms, utcnow
from batm_common.jsondoc import NotAJsonObject, parse_object
from batm_common.quarantine import Replacement, quarantine

log = logging.getLogger(__name__)

DB_FILE = "local.db"
MAX_PAYLOAD = 64 * 1024
EVENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
WINDOW = 500  # events published and not yet acknowledged by the server, at once
RESEND_AFTER = 10.0  # seconds a sent event may wait for the server's acknowledgement
UNACKED_ERROR_AFTER = 30.0  # ... before the wait is reported as last_sync_error
MAX_ACK_IDS = 1000  # ids in one acknowledgement message (the server sends at most 500)
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    id      TEXT NOT NULL UNIQUE,
    body    BLOB NOT NULL,
    sent_at TEXT  -- the broker's PUBACK came (informational: unconfirmed events are re-sent)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


class EventError(ValueError):
    """An event that cannot be recorded; str() says why."""


class AckError(ValueError):
    """An acknowledgement payload that cannot be used; str() says why."""


def parse_acks(payload: bytes) -> list[str]:
    """The event ids of a server acknowledgement {"ids": [id, …]}; AckError if unusable."""
    try:
        ids = parse_object(payload, "acknowledgement", max_bytes=MAX_PAYLOAD).get("ids")
    except NotAJsonObject as exc:
        raise AckError(str(exc)) from None
    if not isinstance(ids, list):
        raise AckError('acknowledgement: must be a JSON object {"ids": [event ids]}')
    if len(ids) > MAX_ACK_IDS:
        raise AckError(f"acknowledgement: {len(ids)} ids, more than {MAX_ACK_IDS}")
    bad = next((i for i in ids if not isinstance(i, str) or not EVENT_ID.match(i)), None)
    if bad is not None:
        raise AckError(f"acknowledgement: {bad!r} is not an event id")
    return ids


@dataclass(frozen=True)
class Pending:
    seq: int
    id: str
    body: bytes


class Outbox:
    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / DB_FILE
        self.quarantined: Path | None = None  # where a damaged local.db went, this start
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            # A damaged file must not crash-loop the agent (issue 13, item 5): keep it aside
            # for a post-mortem and start a fresh one; the daemon reports the quarantine.
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self.quarantined = Path(quarantine(self.path, str(exc), Replacement.RECREATED)
                                    .moved_to)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        new = not self.path.exists()
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if new:
            self.path.chmod(0o600)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a recorded event survives a power cut
        db.executescript(SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
        if "sent_at" not in columns:  # a local.db made before server acknowledgements
            db.execute("ALTER TABLE outbox ADD COLUMN sent_at TEXT")
        # When this database was made: what a reset reports to the operator, so "fresh" is a
        # fact they can check (a local.db made before this key gets it at its next open).
        db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('created_at', ?)",
                   (iso_ms(utcnow()),))
        return db

    @property
    def created_at(self) -> str | None:
        return self.get_meta("created_at")

    def close(self) -> None:
        self._db.close()

    def record(self, event_type: object, data: object = None) -> str:
        """Store an event durably; returns its id. EventError for bad input (nothing stored)."""
        if not isinstance(event_type, str) or not EVENT_TYPE.match(event_type):
            raise EventError("the event type must be 1-100 letters, digits, '_', '.', ':' or "
                             f"'-', starting with a letter or digit; got {event_type!r}")
        event_id = str(uuid.uuid4())
        try:
            body = json.dumps({"id": event_id, "type": event_type, "at": iso_ms(utcnow()),
                               "data": data}).encode()
        except (TypeError, ValueError) as exc:
            raise EventError(f"the event data is not JSON-serialisable ({exc})") from exc
        if len(body) > MAX_PAYLOAD:
            raise EventError(f"the event is {len(body)} bytes, over the {MAX_PAYLOAD}-byte limit")
        self._db.execute("INSERT INTO outbox (id, body) VALUES (?, ?)", (event_id, body))
        return event_id

    def pending(self, limit: int, after_seq: int = 0) -> list[Pending]:
        rows = self._db.execute(
            "SELECT seq, id, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [Pending(seq, event_id, bytes(body)) for seq, event_id, body in rows]

    def _relaxed(self, sql: str, rows: list[tuple]) -> int:
        """One transaction; returns the number of rows changed. A mark or a delete lost to a
        power cut only means a re-send, which the server ignores: no fsync needed for them."""
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.execute("BEGIN")
            try:
                changed = self._db.executemany(sql, rows).rowcount
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return changed
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    def mark_sent(self, ids: list[str]) -> None:
        if ids:
            stamp = iso_ms(utcnow())
            self._relaxed("UPDATE outbox SET sent_at = ? WHERE id = ?", [(stamp, i) for i in ids])

    def remove(self, ids: list[str]) -> int:
        """Delete these events (unknown ids are no error); returns how many were deleted."""
        if not ids:
            return 0
        return self._relaxed("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]

    def count_sent(self) -> int:
        """Events the broker took that the server has not confirmed yet."""
        return self._db.execute(
            "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL").fetchone()[0]

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def reset(self) -> None:
        """Delete the database and make a fresh one (the operator's "reset local database")."""
        self._db.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self._db = self._open()


@dataclass
class _Outstanding:
    """An event handed to the link on this connection and not yet confirmed by the server."""

    item: Pending
    mid: int | None  # None once its PUBACK came
    sent_at: float | None = None  # monotonic time of the latest PUBACK
    first_sent_at: float | None = None  # ... of the first one (for the sync error)
    resends: int = 0


class OutboxPump:
    """Publish pending events in recording order with a bounded window; an event's PUBACK marks
    it sent, the server's acknowledgement deletes it; a sent event not acknowledged within
    `resend_after` seconds is published again.

    `publish(body) -> mid` returns the MQTT message id, or None when the link cannot take it.
    All methods run on the daemon's loop (the link marshals its callbacks there).
    """

    def __init__(self, outbox: Outbox, on_change: Callable[[], None] = lambda: None,
                 window: int = WINDOW, resend_after: float = RESEND_AFTER,
                 error_after: float = UNACKED_ERROR_AFTER,
                 clock: Callable[[], float] = time.monotonic):
        self.outbox = outbox
        self.window = window
        self.resend_after = resend_after
        self.error_after = error_after
        self.on_change = on_change
        self._clock = clock
        self._publish: Callable[[bytes], int | None] | None = None
        self._outstanding: dict[str, _Outstanding] = {}  # by event id, in publishing order
        self._mids: dict[int, str] = {}  # MQTT mid -> event id, until its PUBACK
        self._last_seq = 0  # highest seq handed to the link on this connection
        self.last_sync: str | None = outbox.get_meta("last_sync")
        self.last_sync_error: str | None = outbox.get_meta("last_sync_error")
        self.published = 0
        self.resent = 0
        self.confirmed = 0  # events the server acknowledged since the last drain

    @property
    def connected(self) -> bool:
        return self._publish is not None

    @property
    def in_flight(self) -> int:
        """Events published on this connection and not yet confirmed by the server."""
        return len(self._outstanding)

    def connected_with(self, publish: Callable[[bytes], int | None]) -> None:
        """A new connection: every event the server has not confirmed goes out again."""
        self._publish = publish
        self._forget()
        if self.outbox.count() == 0 and (self.last_sync is None
                                         or self.last_sync_error is not None):
            self._synced()
        self.pump()

    def disconnected(self, reason: str) -> None:
        if self._publish is None:
            return
        self._publish = None
        self._forget()
        pending = self.outbox.count()
        if pending:
            self._set_error(f"link lost with {pending} event(s) not acknowledged by the "
                            f"server: {reason}")

    def reset(self) -> None:
        """After the database was recreated: nothing is pending, nothing in flight."""
        self._forget()
        self.last_sync = None
        self.last_sync_error = None
        self.confirmed = 0
        if self._publish is not None:
            self._synced()

    def _forget(self) -> None:
        self._outstanding.clear()
        self._mids.clear()
        self._last_seq = 0

    def pump(self) -> None:
        """Hand the link as many pending events as the window allows (the drain order is the
        recording order)."""
        if self._publish is None:
            return
        room = self.window - len(self._outstanding)
        if room <= 0:
            return
        for item in self.outbox.pending(room, self._last_seq):
            mid = self._publish(item.body)
            if mid is None:
                self._set_error("the MQTT link refused a publish")
                return
            self._outstanding[item.id] = _Outstanding(item, mid)
            self._mids[mid] = item.id
            self._last_seq = item.seq
            self.published += 1

    def acked(self, mids: list[int]) -> None:
        """The broker's PUBACKs: those events are sent (not yet delivered)."""
        now = self._clock()
        sent = []
        for mid in mids:
            event_id = self._mids.pop(mid, None)
            entry = self._outstanding.get(event_id) if event_id is not None else None
            if entry is None or entry.mid != mid:
                continue  # a status or result publish, or an event confirmed meanwhile
            entry.mid = None
            entry.sent_at = now
            if entry.first_sent_at is None:
                entry.first_sent_at = now
                sent.append(event_id)
        self.outbox.mark_sent(sent)

    def server_acked(self, ids: list[str]) -> None:
        """The server stored these events (or had them already): delete them for good."""
        if not ids:
            return
        for event_id in ids:
            entry = self._outstanding.pop(event_id, None)
            if entry is not None and entry.mid is not None:
                self._mids.pop(entry.mid, None)
        # Also ids this connection did not send (an acknowledgement the broker kept for us
        # while we were away): deleting them is just as right. Ids no longer stored (a second
        # acknowledgement of a re-sent event) change nothing.
        removed = self.outbox.remove(ids)
        self.confirmed += removed
        if removed and self.outbox.count() == 0:
            self._synced()
        self.pump()

    def tick(self) -> None:
        """Called about once a second: re-send sent events the server has not acknowledged
        within `resend_after`, and report a wait longer than `error_after`."""
        if self._publish is None:
            return
        now = self._clock()
        overdue = [e for e in self._outstanding.values()
                   if e.sent_at is not None and now - e.sent_at >= self.resend_after]
        for entry in overdue:
            mid = self._publish(entry.item.body)
            if mid is None:
                self._set_error("the MQTT link refused a publish")
                return
            entry.mid = mid
            entry.sent_at = None
            entry.resends += 1
            self._mids[mid] = entry.item.id
            self.resent += 1
        if overdue:
            log.warning("re-sent %d event(s) the server did not acknowledge within %.0f s",
                        len(overdue), self.resend_after)
        waiting = sum(1 for e in self._outstanding.values()
                      if e.first_sent_at is not None and now - e.first_sent_at >= self.error_after)
        if waiting:
            self._set_error(f"server did not acknowledge {waiting} event(s) for "
                            f"{self.error_after:.0f} s")

    def problem(self, error: str) -> None:
        """Something that stops the outbox from draining (e.g. a refused subscription)."""
        self._set_error(error)

    def _synced(self) -> None:
        """The outbox is empty and the server confirmed everything: that is a sync."""
        self.last_sync = iso_ms(utcnow())
        self.outbox.set_meta("last_sync", self.last_sync)
        if self.last_sync_error is not None:
            self.last_sync_error = None
            self.outbox.set_meta("last_sync_error", None)
        self.confirmed = 0
        self.on_change()

    def _set_error(self, error: str) -> None:
        if error != self.last_sync_error:
            self.last_sync_error = error
            self.outbox.set_meta("last_sync_error", error)
            self.on_change()
