"""What the master service stores: terminal status, events, commands, log archives.

Every method is one transaction. Payloads from terminals are checked field by field; a bad one
is refused with a sentence (counted on the terminal's status row, never a crash), and nothing
already stored is touched. Events are stored idempotently by their terminal-made id, so a QoS 1
redelivery — or a terminal re-sending an event it has no acknowledgement for — never makes a
duplicate. `ingest` says which events are stored (new or already there), so that the server can
acknowledge them to the terminal once the transaction has committed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import Session, sessionmaker

from batm_common.atomic import atomic_write, ensure_private_dir
from batm_common.clock import utcnow
from batm_common.remote_commands import COMMAND_NAMES
from server.db import Terminal, serial_problem
from server.errors import ServiceError, bad_request, unknown_terminal
from server.master_db import Archive, Command, StatusHistory, TerminalEvent, TerminalStatus
from server.views import iso

log = logging.getLogger("batm-server.master")

MAX_PAYLOAD = 64 * 1024
MAX_ARCHIVE = 64 * 1024 * 1024
MIN_CURRENT_VERSION = 20230801  # DESIGN.md §2: older terminals need an update (yellow rows)
EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ARCHIVES_DIR = "archives"
# Changes in these make a history row; uptime, handshake age and the like only refresh the row.
HISTORY_FIELDS = ("online", "version", "slot", "state", "screen", "last_update",
                  "last_sync_error")
HISTORY_LIMIT = 1000


class PayloadError(ValueError):
    """A terminal's MQTT payload is unusable; str() says why."""


def status_topic(serial: str) -> str:
    return f"status:{serial}"


def command_topic(command_id: str) -> str:
    return f"command:{command_id}"


def parse_json_object(payload: bytes, what: str) -> dict:
    if len(payload) > MAX_PAYLOAD:
        raise PayloadError(f"{what}: {len(payload)} bytes is over the {MAX_PAYLOAD}-byte limit")
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"{what}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise PayloadError(f"{what}: must be a JSON object")
    return value


def _field(obj: dict, name: str, types: type | tuple, what: str, *, optional: bool = True,
           max_len: int = 500):
    value = obj.get(name)
    if value is None:
        if optional:
            return None
        raise PayloadError(f"{what}: {name} is missing")
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise PayloadError(f"{what}: {name} must be {_names(types)}, got bool")
    if not isinstance(value, types):
        raise PayloadError(f"{what}: {name} must be {_names(types)}, got {type(value).__name__}")
    if isinstance(value, str) and len(value) > max_len:
        raise PayloadError(f"{what}: {name} is longer than {max_len} characters")
    return value


def _names(types: type | tuple) -> str:
    items = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in items)


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
    kind: str  # "status" | "events" | "results"
    payload: bytes


class MasterRecords:
    def __init__(self, sessions: sessionmaker, data_dir: Path,
                 notify: Callable[[str], None] | None = None,
                 clock: Callable[[], datetime.datetime] = utcnow):
        self._sessions = sessions
        self.archives_dir = Path(data_dir) / ARCHIVES_DIR
        self._notify = notify or (lambda _topic: None)
        self._clock = clock

    # ------------------------------------------------------------------ ingest (MQTT)

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
        data = parse_json_object(message.payload, what)
        serial = _field(data, "serial", str, what)
        if serial is not None and serial != message.serial:
            raise PayloadError(f"status: serial {serial!r} does not match the topic")
        online = _field(data, "online", bool, what)
        row = self._status_row(session, message.serial)
        before = {name: getattr(row, name) for name in HISTORY_FIELDS}
        row.online = bool(online) if online is not None else True
        if online is not False or len(data) > 1:
            row.version = _field(data, "version", int, what)
            row.slot = _field(data, "slot", str, what, max_len=32)
            row.state = _field(data, "state", str, what, max_len=64)
            row.screen = _field(data, "screen", str, what, max_len=64)
            row.last_update = _field(data, "last_update", str, what, max_len=40)
            row.last_sync = _field(data, "last_sync", str, what, max_len=40)
            row.last_sync_error = _field(data, "last_sync_error", str, what)
            row.uptime = _field(data, "uptime", (int, float), what)
            row.vpn_handshake_age = _field(data, "vpn_handshake_age", (int, float), what)
            row.outbox_pending = _field(data, "outbox_pending", int, what)
            row.reported_at = _field(data, "at", str, what, max_len=40)
        row.received_at = now
        after = {name: getattr(row, name) for name in HISTORY_FIELDS}
        if after != before:
            session.add(StatusHistory(serial=message.serial, received_at=now,
                                      status=json.dumps(data, sort_keys=True)))

    def _store_event(self, session: Session, message: Incoming, now: datetime.datetime) -> str:
        what = "event"
        data = parse_json_object(message.payload, what)
        event_id = _field(data, "id", str, what, optional=False, max_len=64)
        if not EVENT_ID.match(event_id):
            raise PayloadError("event: id must be 1-64 letters, digits, '-' or '_'")
        event_type = _field(data, "type", str, what, optional=False, max_len=100)
        at = _field(data, "at", str, what, max_len=40)
        inserted = session.execute(
            insert(TerminalEvent)
            .values(event_id=event_id, serial=message.serial, type=event_type, at=at,
                    data=json.dumps(data.get("data")), received_at=now)
            .on_conflict_do_nothing(index_elements=["event_id"])
        ).rowcount
        if not inserted:  # a redelivery: acknowledged again, unless the id is someone else's
            owner = session.scalar(select(TerminalEvent.serial)
                                   .where(TerminalEvent.event_id == event_id))
            if owner != message.serial:
                raise PayloadError(f"event: id {event_id!r} belongs to another terminal")
        return event_id

    def _store_result(self, session: Session, message: Incoming, now: datetime.datetime) -> str:
        what = "result"
        data = parse_json_object(message.payload, what)
        command_id = _field(data, "command_id", str, what, max_len=64)
        ok = _field(data, "ok", bool, what, optional=False)
        error = _field(data, "error", str, what)
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

    # ------------------------------------------------------------------ operator views

    def _terminal(self, session: Session, serial: str) -> Terminal:
        problem = serial_problem(serial)
        if problem:
            raise bad_request(problem)
        terminal = session.get(Terminal, serial)
        if terminal is None:
            raise unknown_terminal(serial)
        return terminal

    def status(self, serial: str, history: int = 0) -> dict:
        with self._sessions() as session, session.begin():
            terminal = self._terminal(session, serial)
            view = status_view(terminal, session.get(TerminalStatus, serial))
            if history:
                rows = session.scalars(
                    select(StatusHistory).where(StatusHistory.serial == serial)
                    .order_by(StatusHistory.id.desc()).limit(min(history, HISTORY_LIMIT))
                ).all()
                view["history"] = [
                    {"received_at": iso_ms(r.received_at), "status": json.loads(r.status)}
                    for r in rows
                ]
            return view

    def statuses(self) -> list[dict]:
        with self._sessions() as session, session.begin():
            terminals = session.scalars(select(Terminal).order_by(Terminal.serial)).all()
            return [status_view(t, session.get(TerminalStatus, t.serial)) for t in terminals]

    def events(self, serial: str, limit: int = 100) -> dict:
        with self._sessions() as session, session.begin():
            self._terminal(session, serial)
            count = session.scalar(
                select(func.count()).select_from(TerminalEvent)
                .where(TerminalEvent.serial == serial)
            )
            rows = session.scalars(
                select(TerminalEvent).where(TerminalEvent.serial == serial)
                .order_by(TerminalEvent.received_at.desc(), TerminalEvent.event_id)
                .limit(limit)
            ).all() if limit else []
            return {"serial": serial, "count": count, "events": [
                {"id": e.event_id, "type": e.type, "at": e.at, "data": json.loads(e.data),
                 "received_at": iso_ms(e.received_at)} for e in rows
            ]}

    # ------------------------------------------------------------------ commands

    def create_command(self, serial: str, command: object, args: object) -> dict:
        if not isinstance(command, str) or command not in COMMAND_NAMES:
            raise bad_request(
                f"command: must be one of {', '.join(COMMAND_NAMES)}, got {command!r}")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise bad_request("args: must be a JSON object")
        encoded = json.dumps(args)
        if len(encoded) > 4096:
            raise bad_request("args: longer than 4096 bytes")
        with self._sessions() as session, session.begin():
            terminal = self._terminal(session, serial)
            if terminal.state != "paired":
                raise ServiceError(409, "not_paired",
                                   f"terminal {serial!r} is not paired (it is {terminal.state})")
            row = Command(id=secrets.token_hex(8), serial=serial, command=command, args=encoded,
                          issued_at=self._clock())
            session.add(row)
            session.flush()
            return command_view(row)

    def fail_command(self, command_id: str, error: str) -> None:
        with self._sessions() as session, session.begin():
            row = session.get(Command, command_id)
            if row is not None and row.finished_at is None:
                row.ok, row.error, row.finished_at = False, error, self._clock()
        self._notify(command_topic(command_id))

    def finish_command(self, command_id: str, result: dict) -> None:
        """A command the server carried out itself (unpair: the revocation is server-side)."""
        with self._sessions() as session, session.begin():
            row = session.get(Command, command_id)
            if row is not None and row.finished_at is None:
                row.ok, row.result, row.finished_at = True, json.dumps(result), self._clock()
        self._notify(command_topic(command_id))

    def command(self, serial: str, command_id: str) -> dict:
        with self._sessions() as session, session.begin():
            self._terminal(session, serial)
            row = session.get(Command, command_id)
            if row is None or row.serial != serial:
                raise ServiceError(404, "unknown_command",
                                   f"terminal {serial!r} has no command {command_id!r}")
            view = command_view(row)
            view["archives"] = [archive_view(a) for a in session.scalars(
                select(Archive).where(Archive.command_id == command_id)).all()]
            return view

    def commands(self, serial: str) -> list[dict]:
        with self._sessions() as session, session.begin():
            self._terminal(session, serial)
            rows = session.scalars(select(Command).where(Command.serial == serial)
                                   .order_by(Command.issued_at.desc()).limit(100)).all()
            return [command_view(r) for r in rows]

    # ------------------------------------------------------------------ log archives

    def store_archive(self, serial: str, command_id: str, body: bytes) -> dict:
        with self._sessions() as session, session.begin():
            row = session.get(Command, command_id)
            if row is None or row.serial != serial or row.command != "retrieve_logs":
                raise ServiceError(404, "unknown_command",
                                   f"no retrieve_logs command {command_id!r} for {serial!r}")
            limit = json.loads(row.args).get("max_size")
            if isinstance(limit, int) and len(body) > limit:
                raise ServiceError(413, "too_large",
                                   f"the archive is {len(body)} bytes, over max_size {limit}")
            if not body:
                raise bad_request("the archive is empty")
            ensure_private_dir(self.archives_dir)
            archive_id = secrets.token_hex(8)
            filename = f"{serial}-{command_id}-{archive_id}.tar.gz"
            atomic_write(self.archives_dir / filename, body, mode=0o600)
            archive = Archive(id=archive_id, serial=serial, command_id=command_id,
                              filename=filename, size=len(body),
                              sha256=hashlib.sha256(body).hexdigest(), created_at=self._clock())
            session.add(archive)
            session.flush()
            view = archive_view(archive)
        self._notify(command_topic(command_id))
        return view

    def archives(self, serial: str) -> list[dict]:
        with self._sessions() as session, session.begin():
            self._terminal(session, serial)
            rows = session.scalars(select(Archive).where(Archive.serial == serial)
                                   .order_by(Archive.created_at.desc())).all()
            return [archive_view(a) for a in rows]

    def archive_file(self, archive_id: str) -> tuple[dict, Path]:
        with self._sessions() as session, session.begin():
            row = session.get(Archive, archive_id) if isinstance(archive_id, str) else None
            if row is None:
                raise ServiceError(404, "unknown_archive", f"no archive {archive_id!r}")
            path = self.archives_dir / row.filename
            if not path.exists():
                raise ServiceError(410, "archive_gone", f"archive file {path} is gone")
            return archive_view(row), path


def iso_ms(moment: datetime.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def status_view(terminal: Terminal, row: TerminalStatus | None) -> dict:
    version = (row.version if row and row.version is not None else terminal.version)
    error = row.last_sync_error if row else None
    update_required = version is not None and version < MIN_CURRENT_VERSION
    return {
        "serial": terminal.serial,
        "location": terminal.location,
        "state": terminal.state,
        "online": bool(row.online) if row else False,
        "version": version,
        "slot": row.slot if row else None,
        "agent_state": row.state if row else None,
        "screen": row.screen if row else None,
        "last_update": row.last_update if row else None,
        "last_sync": row.last_sync if row else None,
        "last_sync_error": error,
        "uptime": row.uptime if row else None,
        "vpn_handshake_age": row.vpn_handshake_age if row else None,
        "outbox_pending": row.outbox_pending if row else None,
        "reported_at": row.reported_at if row else None,
        "received_at": iso_ms(row.received_at) if row else None,
        "rejected": row.rejected if row else 0,
        "last_reject": row.last_reject if row else None,
        # The seed's colours: red on a sync error, yellow when an update is required.
        "highlight": "red" if error else ("yellow" if update_required else None),
    }


def command_view(row: Command) -> dict:
    return {
        "id": row.id, "serial": row.serial, "command": row.command, "args": json.loads(row.args),
        "issued_at": iso_ms(row.issued_at), "ok": row.ok, "error": row.error,
        "result": json.loads(row.result) if row.result else None,
        "finished_at": iso_ms(row.finished_at),
        "state": "pending" if row.finished_at is None else ("done" if row.ok else "failed"),
    }


def archive_view(row: Archive) -> dict:
    return {
        "id": row.id, "serial": row.serial, "command_id": row.command_id, "size": row.size,
        "sha256": row.sha256, "created_at": iso_ms(row.created_at),
        "download": f"/api/v1/archives/{row.id}", "filename": row.filename,
    }


def archive_path_ok(path: Path) -> bool:
    return path.is_file() and not os.path.islink(path)
