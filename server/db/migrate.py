"""Schema migrations: bring a database to the schema this code knows (Alembic; the history is in
server/db/migrations/versions/).

`batm-server run` and every offline CLI command upgrade the database when they open it
(open_database), so a single server just works after a package upgrade; `batm-server db upgrade`
does the same on its own, for an operator who migrates before restarting replicas. Replicas
starting together migrate one after the other (dialect.migration_lock), and a database that a
*newer* batm-server migrated is refused, not touched.

A database made before migrations existed has the tables of revision 0001 but no alembic_version
row: it is stamped 0001, then upgraded like any other.

Developers: `python -m server.db.migrate revision -m "what changed"` writes the next migration
from the difference between the tables and a database at head (an empty SQLite file).
"""

from __future__ import annotations

import functools
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import Connection, Engine

from server.db.dialect import migration_lock
from server.db.errors import DatabaseError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
INITIAL = "0001"
PRE_MIGRATION_TABLE = "terminals"  # present in every database made before migrations existed


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    """The revision this code's tables correspond to."""
    revision = _script().get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    """The database's revision; None for an empty (or pre-migration) database."""
    return MigrationContext.configure(connection).get_current_revision()


def _known(revision: str) -> bool:
    try:
        return _script().get_revision(revision) is not None
    except Exception:  # alembic's ResolutionError and kin: not one of ours
        return False


def upgrade(engine: Engine, where: str) -> tuple[str | None, str]:
    """Migrate the database to head; (revision before, revision after). DatabaseError when the
    database is newer than this code. `where` names the database for messages."""
    with engine.connect() as connection:  # the fast path: already at head, nothing to lock
        before = current(connection)
        connection.rollback()
    if before == head():
        return before, before
    with engine.begin() as connection, migration_lock(connection):
        before = current(connection)  # another replica may have migrated while we waited
        if before is not None and not _known(before):
            raise DatabaseError(
                f"the database {where} is at schema revision {before}, which this batm-server "
                f"does not know (its newest is {head()}): a newer batm-server migrated it; run "
                "that version, or restore a backup made before")
        config = _config(connection)
        if before is None and inspect(connection).has_table(PRE_MIGRATION_TABLE):
            command.stamp(config, INITIAL)
        if before != head():
            command.upgrade(config, "head")
        return before, head()


def revision(message: str) -> None:
    """Write the next migration: the tables' difference from a database at head."""
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{scratch}/head.db")
        upgrade(engine, "(scratch)")
        number = int(head().split("_")[0]) + 1
        with engine.begin() as connection:
            config = _config(connection)
            command.revision(config, message=message, autogenerate=True,
                             rev_id=f"{number:04d}")
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "revision" or args[1] != "-m":
        print('usage: python -m server.db.migrate revision -m "what changed"', file=sys.stderr)
        return 2
    revision(args[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
