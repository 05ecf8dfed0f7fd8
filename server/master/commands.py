"""Remote commands: the operator issues one, the terminal answers over MQTT, the operator reads it.

A command is a row before it is published (master/link.py sends it), so its result — from the
terminal (master/ingest.py), or from the server itself when it could not be sent or was carried
out server-side — always has a row to land in. Finishing wakes the operator's wait on it.
"""

from __future__ import annotations

import datetime
import json
import secrets
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from batm_common.clock import utcnow
from batm_common.remote_commands import (
    COMMAND_NAMES,
    MAX_LOG_SIZE,
    MIN_LOG_SIZE,
    RemoteCommand,
)
from server.db.master import Archive, Command
from server.errors import ServiceError, bad_request
from server.master.views import archive_view, command_view
from server.notify import command_topic
from server.pairing.registry import find_terminal
from server.pairing.states import TerminalState

MAX_ARGS = 4096  # bytes of JSON


def parse_moment(text: object, name: str) -> str:
    """An ISO 8601 time (naive means UTC) as "YYYY-MM-DDTHH:MM:SSZ"; a clear error otherwise."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip()) if isinstance(text, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise bad_request(
            f"{name}: {text!r} is not an ISO 8601 time like 2024-05-01T10:00:00Z")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def log_arguments(since: object, until: object, max_size: object,
                  names: tuple[str, str, str] = ("since", "until", "max_size")) -> dict:
    """retrieve_logs' arguments checked as the terminal will check them (the period, the
    archive's largest size), so a mistake is refused before anything is sent."""
    start, end = parse_moment(since, names[0]), parse_moment(until, names[1])
    if start >= end:
        raise bad_request(f"{names[0]} must be before {names[1]}")
    if isinstance(max_size, bool) or not isinstance(max_size, int) or not (
            MIN_LOG_SIZE <= max_size <= MAX_LOG_SIZE):
        raise bad_request(f"{names[2]} must be from {MIN_LOG_SIZE} to {MAX_LOG_SIZE} bytes, "
                          f"not {max_size!r}")
    return {"since": start, "until": end, "max_size": max_size}


class Commands:
    def __init__(self, sessions: sessionmaker, notify: Callable[[str], None] | None = None,
                 clock: Callable[[], datetime.datetime] = utcnow):
        self._sessions = sessions
        self._notify = notify or (lambda _topic: None)
        self._clock = clock

    def create_command(self, serial: str, command: object, args: object) -> dict:
        if not isinstance(command, str) or command not in COMMAND_NAMES:
            raise bad_request(
                f"command: must be one of {', '.join(COMMAND_NAMES)}, got {command!r}")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise bad_request("args: must be a JSON object")
        if command == RemoteCommand.RETRIEVE_LOGS:
            args = log_arguments(args.get("since"), args.get("until"), args.get("max_size"))
        encoded = json.dumps(args)
        if len(encoded) > MAX_ARGS:
            raise bad_request(f"args: longer than {MAX_ARGS} bytes")
        with self._sessions() as session, session.begin():
            terminal = find_terminal(session, serial)
            if terminal.state != TerminalState.PAIRED:
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
        """The command with the log archives uploaded for it."""
        with self._sessions() as session, session.begin():
            find_terminal(session, serial)
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
            find_terminal(session, serial)
            rows = session.scalars(select(Command).where(Command.serial == serial)
                                   .order_by(Command.issued_at.desc()).limit(100)).all()
            return [command_view(r) for r in rows]
