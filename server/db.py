"""The server's database: terminals and their pairing requests, in SQLite (data_dir/batm.db).

SQLite in WAL mode, so readers (the CLI working offline, a backup) never block the server. The
schema is made on first open; there is nothing to migrate yet.
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

from sqlalchemy import DateTime, ForeignKey, LargeBinary, String, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from server.paths import DB_FILE

SERIAL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

SCENARIOS = ("A", "B")
TERMINAL_STATES = ("never_paired", "pairing", "paired", "unpaired")
REQUEST_STATES = ("awaiting_code", "pending", "approved")
OPEN_REQUEST_STATES = ("awaiting_code", "pending")


def valid_serial(serial: object) -> bool:
    return isinstance(serial, str) and bool(SERIAL_PATTERN.fullmatch(serial))


def serial_problem(serial: object) -> str | None:
    """None for a good serial, else a sentence saying what is wrong with it."""
    if not isinstance(serial, str):
        return "the serial must be text"
    if not serial:
        return "the serial is empty"
    if len(serial) > 64:
        return "the serial is longer than 64 characters"
    if not valid_serial(serial):
        return (
            f"the serial {serial!r} may hold only letters, digits, '.', '_' and '-', "
            "and must start with a letter or digit"
        )
    return None


class UTCDateTime(TypeDecorator[datetime.datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite itself keeps no time zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware times")
        return value.astimezone(datetime.UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=datetime.UTC)


class Base(DeclarativeBase):
    pass


class Terminal(Base):
    __tablename__ = "terminals"

    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    scenario: Mapped[str] = mapped_column(String(1))
    location: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="never_paired")
    # The identity key the terminal paired with. It is kept after an unpair so that the
    # terminal's own signed requests can still be authenticated and told "unpaired".
    identity_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    version: Mapped[int | None]
    paired_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)


class PairingRequest(Base):
    __tablename__ = "pairing_requests"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    serial: Mapped[str] = mapped_column(
        ForeignKey("terminals.serial", ondelete="CASCADE"), index=True
    )
    identity_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    commitment: Mapped[str] = mapped_column(String(64))
    server_nonce: Mapped[bytes] = mapped_column(LargeBinary(32))
    terminal_nonce: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    code: Mapped[str | None] = mapped_column(String(9))
    peer: Mapped[str | None] = mapped_column(String(64))
    # What the terminal said in its hello; becomes the terminal's version on approval.
    version: Mapped[int | None]
    hardware: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    last_poll: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16), default="awaiting_code")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")  # the CLI and the server may meet
    cursor.close()


def open_database(data_dir: Path) -> sessionmaker:
    """Open (making if needed) data_dir/batm.db and return a session factory."""
    path = Path(data_dir) / DB_FILE
    if not path.exists():
        # Made 0600 before SQLite opens it: the umask must not decide who may read it.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    engine: Engine = create_engine(
        f"sqlite:///{path}",
        # Sessions are short and never shared, but the server's event loop and a test client's
        # thread may each open one.
        connect_args={"check_same_thread": False},
    )
    from server import firmware_db  # noqa: F401  (registers the firmware catalog's tables)

    event.listen(engine, "connect", _sqlite_pragmas)
    import server.master_db  # noqa: F401  (registers the master service's tables)

    Base.metadata.create_all(engine)
    return sessionmaker(engine, expire_on_commit=False)


def close_database(sessions: sessionmaker) -> None:
    """Close the pooled connections (and so the WAL) of a factory from open_database."""
    sessions.kw["bind"].dispose()
