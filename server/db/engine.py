"""The server's database: data_dir/batm.db, opened (and its schema made) once per process.

SQLite in WAL mode, so readers (the CLI working offline, a backup) never block the server. The
schema is every table of db/ (imported here, so that one open makes all of them); there is
nothing to migrate yet.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from server.db import console, firmware, master, terminals, vpn
from server.db.base import Base
from server.paths import DB_FILE

# The modules whose tables make up the database.
SCHEMA = (terminals, firmware, master, vpn, console)


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
    event.listen(engine, "connect", _sqlite_pragmas)
    Base.metadata.create_all(engine)
    return sessionmaker(engine, expire_on_commit=False)


def close_database(sessions: sessionmaker) -> None:
    """Close the pooled connections (and so the WAL) of a factory from open_database."""
    sessions.kw["bind"].dispose()
