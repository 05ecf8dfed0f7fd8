"""`batm-server db upgrade|current`: the database's schema, by hand.

Every start migrates anyway (server/db/migrate.py); `db upgrade` lets an operator migrate first,
once, before restarting several replicas on the new version, and see what it did.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import OperationalError

from server.db import migrate
from server.db.engine import create_database_engine, database_url, describe
from server.db.errors import DatabaseError


def database_command(action: str, data_dir: Path) -> str:
    """Carry out one `db` command; its report, or DatabaseError saying why it could not."""
    url = database_url(data_dir)
    where = describe(url)
    engine = create_database_engine(url)
    try:
        if action == "upgrade":
            before, after = migrate.upgrade(engine, where)
            if before == after:
                return f"{where}: already at schema revision {after}"
            return f"{where}: migrated from schema revision {before or '(empty)'} to {after}"
        if action == "current":
            with engine.connect() as connection:
                current = migrate.current(connection)
            return (f"{where}: schema revision {current or '(empty)'}; "
                    f"this batm-server's is {migrate.head()}")
        raise AssertionError(action)  # pragma: no cover - argparse lets only these through
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(f"cannot open the database {where}: {reason}") from None
    finally:
        engine.dispose()
