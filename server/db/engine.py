"""The server's database: opened (and migrated to this code's schema) once per process.

Where it is: `--database URL`, or $BATM_DATABASE_URL, or the SQLite file data_dir/batm.db.
SQLite (the default, one server process) runs in WAL mode, so readers (the CLI working offline,
a backup) never block the server. PostgreSQL (`postgresql+psycopg://…`) is for fleets and for
several server processes on one database (docs/deployment.md). The schema is every table of
db/ (imported here); server/db/migrate.py brings a database to it.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import sessionmaker

from server.db import console, firmware, guards, master, terminals, vpn
from server.db.base import Base
from server.db.dialect import DIALECTS, SQLITE
from server.db.errors import DatabaseError
from server.paths import DATABASE_ENV, DB_FILE

# The modules whose tables make up the database.
SCHEMA = (terminals, firmware, master, vpn, console, guards)
POOL_SIZE = 10  # PostgreSQL connections per server process (plus as many on overflow)


def schema_metadata() -> MetaData:
    """Every table of the schema (the migrations compare against it)."""
    return Base.metadata


def database_url(data_dir: Path, url: str | None = None) -> str:
    """The URL to open: the one given, else $BATM_DATABASE_URL, else data_dir/batm.db."""
    chosen = url or os.environ.get(DATABASE_ENV)
    if chosen:
        return chosen
    return f"sqlite:///{Path(data_dir).absolute() / DB_FILE}"


def describe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")  # the CLI and the server may meet
    cursor.close()


def create_database_engine(url: str) -> Engine:
    """An engine for `url`; DatabaseError naming the problem for a URL we cannot use."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(
            f"--database: {url!r} is not a database URL (expected sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/NAME)") from None
    if parsed.get_backend_name() not in DIALECTS:
        raise DatabaseError(
            f"--database: {parsed.get_backend_name()!r} databases are not supported; use "
            "sqlite:///PATH or postgresql+psycopg://USER@HOST/NAME")
    try:
        if parsed.get_backend_name() == SQLITE:
            return _sqlite_engine(parsed.database)
        return create_engine(parsed, pool_size=POOL_SIZE, pool_pre_ping=True)
    except NoSuchModuleError as exc:
        raise DatabaseError(
            f"--database: no driver for {parsed.drivername!r} ({exc}); for PostgreSQL use "
            "postgresql+psycopg://… (psycopg 3, installed with the server)") from None
    except ModuleNotFoundError as exc:
        raise DatabaseError(
            f"--database: the driver {exc.name!r} is not installed; "
            "pip install 'batm-terminal[server]' brings psycopg") from None


def _sqlite_engine(database: str | None) -> Engine:
    if not database or database == ":memory:":
        raise DatabaseError("--database: a SQLite database needs a file (sqlite:///PATH)")
    path = Path(database)
    if not path.parent.is_dir():
        raise DatabaseError(f"--database: the directory {path.parent} does not exist")
    if not path.exists():
        # Made 0600 before SQLite opens it: the umask must not decide who may read it.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    engine = create_engine(
        f"sqlite:///{path}",
        # Sessions are short and never shared, but the server's event loop and a test client's
        # thread may each open one.
        connect_args={"check_same_thread": False},
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_database(data_dir: Path, url: str | None = None) -> sessionmaker:
    """Open the database (data_dir/batm.db unless `url` or $BATM_DATABASE_URL says otherwise),
    migrate it to this code's schema, and return a session factory. DatabaseError says why it
    cannot."""
    from server.db import migrate  # Alembic: only once a database is really opened

    chosen = database_url(data_dir, url)
    engine = create_database_engine(chosen)
    try:
        migrate.upgrade(engine, describe(chosen))
    except OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(f"cannot open the database {describe(chosen)}: {reason}") from None
    except DatabaseError:
        engine.dispose()
        raise
    return sessionmaker(engine, expire_on_commit=False)


def close_database(sessions: sessionmaker) -> None:
    """Close the pooled connections (and so the WAL) of a factory from open_database."""
    sessions.kw["bind"].dispose()
