"""Log archives: what a terminal uploads for a retrieve_logs command, kept for the operator.

The gate stores the upload (POST /api/v1/logs/{command_id}, signed by the paired terminal) as
data_dir/archives/<serial>-<command>-<id>.tar.gz (0600) with a row naming it; the admin API lists
and serves them. An archive larger than the command's max_size, or for a command the terminal was
not given, is refused.

Retention: a terminal keeps its `keep` newest archives, none older than `max_age`; older ones go
(row and file) whenever a new one is stored, so the directory cannot fill up with log uploads.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import secrets
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from batm_common.atomic import atomic_write, ensure_private_dir
from batm_common.clock import utcnow
from batm_common.remote_commands import RemoteCommand
from server.db.dialect import storable_text
from server.db.master import Archive, Command
from server.errors import ServiceError, bad_request
from server.master.views import archive_view
from server.notify import command_topic
from server.pairing.registry import find_terminal
from server.paths import ARCHIVES_DIR

MAX_ARCHIVE = 64 * 1024 * 1024  # bytes: the gate's body limit for uploads (http/gate.py)
KEEP_PER_TERMINAL = 10
MAX_AGE = datetime.timedelta(days=30)


class Archives:
    def __init__(self, sessions: sessionmaker, data_dir: Path,
                 notify: Callable[[str], None] | None = None,
                 clock: Callable[[], datetime.datetime] = utcnow,
                 keep: int = KEEP_PER_TERMINAL, max_age: datetime.timedelta = MAX_AGE):
        self._sessions = sessions
        self.directory = Path(data_dir) / ARCHIVES_DIR
        self._notify = notify or (lambda _topic: None)
        self._clock = clock
        self.keep = keep
        self.max_age = max_age

    def upload_limit(self, serial: str, command_id: str) -> int:
        """The most bytes this upload may have (the command's max_size, at most MAX_ARCHIVE);
        404 unless `serial` was given this retrieve_logs command. Asked before the body is read."""
        with self._sessions() as session:
            row = session.get(Command, command_id) if storable_text(command_id) else None
            if row is None or row.serial != serial or row.command != RemoteCommand.RETRIEVE_LOGS:
                raise ServiceError(404, "unknown_command",
                                   f"no retrieve_logs command {command_id!r} for {serial!r}")
            limit = json.loads(row.args).get("max_size")
        return min(limit, MAX_ARCHIVE) if isinstance(limit, int) else MAX_ARCHIVE

    def partial_path(self) -> Path:
        """Where an upload streams to before store_file keeps it (same directory: a rename)."""
        ensure_private_dir(self.directory)
        return self.directory / f".upload-{secrets.token_hex(8)}.part"

    def store_archive(self, serial: str, command_id: str, body: bytes) -> dict:
        """An archive already in memory (tests, small uploads): store_file's checks and row."""
        limit = self.upload_limit(serial, command_id)
        if len(body) > limit:
            raise ServiceError(413, "too_large",
                               f"the archive is {len(body)} bytes, over max_size {limit}")
        partial = self.partial_path()
        atomic_write(partial, body, mode=0o600)
        return self.store_file(serial, command_id, partial, len(body),
                               hashlib.sha256(body).hexdigest())

    def store_file(self, serial: str, command_id: str, partial: Path, size: int,
                   sha256: str) -> dict:
        """Keep an upload that was streamed to `partial` (removed when refused)."""
        try:
            self.upload_limit(serial, command_id)  # still this terminal's command
            if not size:
                raise bad_request("the archive is empty")
            with self._sessions() as session, session.begin():
                archive_id = secrets.token_hex(8)
                filename = f"{serial}-{command_id}-{archive_id}.tar.gz"
                partial.chmod(0o600)
                partial.replace(self.directory / filename)
                archive = Archive(id=archive_id, serial=serial, command_id=command_id,
                                  filename=filename, size=size, sha256=sha256,
                                  created_at=self._clock())
                session.add(archive)
                session.flush()
                view = archive_view(archive)
        finally:
            partial.unlink(missing_ok=True)
        self.prune(serial)
        self._notify(command_topic(command_id))
        return view

    def prune(self, serial: str) -> list[str]:
        """Apply the retention limits to `serial`'s archives; returns the ids removed."""
        cutoff = self._clock() - self.max_age
        with self._sessions() as session, session.begin():
            rows = session.scalars(select(Archive).where(Archive.serial == serial)
                                   .order_by(Archive.created_at.desc(), Archive.id)).all()
            expired = [a for n, a in enumerate(rows) if n >= self.keep or a.created_at < cutoff]
            for archive in expired:
                session.delete(archive)
            files = [self.directory / a.filename for a in expired]
            removed = [a.id for a in expired]
        for path in files:  # after the commit: a row never names a missing file
            path.unlink(missing_ok=True)
        return removed

    def archives(self, serial: str) -> list[dict]:
        with self._sessions() as session, session.begin():
            find_terminal(session, serial)
            rows = session.scalars(select(Archive).where(Archive.serial == serial)
                                   .order_by(Archive.created_at.desc())).all()
            return [archive_view(a) for a in rows]

    def archive_file(self, archive_id: str) -> tuple[dict, Path]:
        with self._sessions() as session, session.begin():
            row = session.get(Archive, archive_id) if isinstance(archive_id, str) else None
            if row is None:
                raise ServiceError(404, "unknown_archive", f"no archive {archive_id!r}")
            path = self.directory / row.filename
            if not path.exists():
                raise ServiceError(410, "archive_gone", f"archive file {path} is gone")
            return archive_view(row), path
