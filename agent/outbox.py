"""The terminal's local database (state_dir/local.db, SQLite WAL) and its event outbox.

An event is committed (synchronous=FULL) before `record` returns, published at QoS 1, and
deleted only once its PUBACK came back; so it survives agent restarts, broker outages and power
cuts, and at worst is sent twice — the server stores events by id, so twice is once.

`OutboxPump` is the publishing logic without I/O: the daemon gives it a `publish` function (the
MQTT link) and feeds it PUBACKs and connection changes; tests drive it with fakes.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DB_FILE = "local.db"
MAX_PAYLOAD = 64 * 1024
EVENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
WINDOW = 200  # events in flight at once
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    id   TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


class EventError(ValueError):
    """An event that cannot be recorded; str() says why."""


def utc_iso(moment: datetime.datetime | None = None) -> str:
    moment = moment or datetime.datetime.now(datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Pending:
    seq: int
    id: str
    body: bytes


class Outbox:
    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / DB_FILE
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        new = not self.path.exists()
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if new:
            self.path.chmod(0o600)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a recorded event survives a power cut
        db.executescript(SCHEMA)
        return db

    def close(self) -> None:
        self._db.close()

    def record(self, event_type: object, data: object = None) -> str:
        """Store an event durably; returns its id. EventError for bad input (nothing stored)."""
        if not isinstance(event_type, str) or not EVENT_TYPE.match(event_type):
            raise EventError("the event type must be 1-100 letters, digits, '_', '.', ':' or "
                             f"'-', starting with a letter or digit; got {event_type!r}")
        event_id = str(uuid.uuid4())
        try:
            body = json.dumps({"id": event_id, "type": event_type, "at": utc_iso(),
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

    def remove(self, ids: list[str]) -> None:
        if not ids:
            return
        # A delete lost to a power cut only means a re-send, which the server ignores: no
        # fsync needed for it.
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
            self._db.execute("COMMIT")
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]

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


class OutboxPump:
    """Publish pending events with a bounded window; delete each on its PUBACK.

    `publish(body) -> mid` returns the MQTT message id, or None when the link cannot take it.
    All methods run on the daemon's loop (PUBACKs are marshalled there by the link).
    """

    def __init__(self, outbox: Outbox, on_change: Callable[[], None] = lambda: None,
                 window: int = WINDOW):
        self.outbox = outbox
        self.window = window
        self.on_change = on_change
        self._publish: Callable[[bytes], int | None] | None = None
        self._inflight: dict[int, Pending] = {}
        self._last_seq = 0  # highest seq handed to the link on this connection
        self.last_sync: str | None = outbox.get_meta("last_sync")
        self.last_sync_error: str | None = outbox.get_meta("last_sync_error")
        self.published = 0
        self.acknowledged = 0

    @property
    def connected(self) -> bool:
        return self._publish is not None

    def connected_with(self, publish: Callable[[bytes], int | None]) -> None:
        self._publish = publish
        self._inflight.clear()
        self._last_seq = 0
        self.pump()

    def disconnected(self, reason: str) -> None:
        if self._publish is None:
            return
        self._publish = None
        pending = self.outbox.count()
        self._inflight.clear()
        if pending:
            self._set_error(f"link lost with {pending} event(s) unacknowledged: {reason}")

    def reset(self) -> None:
        """After the database was recreated: nothing is pending, nothing in flight."""
        self._inflight.clear()
        self._last_seq = 0
        self.last_sync = None
        self.last_sync_error = None
        self.pump()

    def pump(self) -> None:
        """Hand the link as many pending events as the window allows (the drain order is the
        recording order)."""
        if self._publish is None:
            return
        room = self.window - len(self._inflight)
        if room <= 0:
            return
        for item in self.outbox.pending(room, self._last_seq):
            mid = self._publish(item.body)
            if mid is None:
                self._set_error("the MQTT link refused a publish")
                return
            self._inflight[mid] = item
            self._last_seq = item.seq
            self.published += 1
        self._check_drained()

    def acked(self, mids: list[int]) -> None:
        done = [self._inflight.pop(mid) for mid in mids if mid in self._inflight]
        if not done:
            return
        self.outbox.remove([item.id for item in done])
        self.acknowledged += len(done)
        self.pump()

    def _check_drained(self) -> None:
        if self._inflight or self.outbox.count():
            return
        if self.last_sync is None or self.last_sync_error is not None or self.acknowledged:
            self.last_sync = utc_iso()
            self.outbox.set_meta("last_sync", self.last_sync)
            if self.last_sync_error is not None:
                self.last_sync_error = None
                self.outbox.set_meta("last_sync_error", None)
            self.acknowledged = 0
            self.on_change()

    def _set_error(self, error: str) -> None:
        if error != self.last_sync_error:
            self.last_sync_error = error
            self.outbox.set_meta("last_sync_error", error)
            self.on_change()
