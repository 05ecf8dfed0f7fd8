"""The databases the server's tests run on: a SQLite file, or PostgreSQL (issue 12).

`database_url` (tests/conftest.py) is parametrized over both: a test that takes it runs twice,
`[sqlite]` with the data dir's own file (the URL is None, the default) and `[postgresql]` with a
database of its own in this worker's throw-away cluster (sim/postgres.py, Debian's package). A
cluster per pytest-xdist worker, started at its first PostgreSQL test, with one database
migrated once; before each test, whatever connections an earlier test left are ended and every
table is emptied (TRUNCATE, with triggers off for the session so that the append-only audit log
empties too). That costs ~20 ms a test, where a database copied from a template costs ~250 ms
and migrating a fresh one ~500 ms (measured on this 2-core machine under load).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from sim import postgres
from sim.testsupport import unavailable

DATABASE = "batm_tests"


class ClusterForTests:
    """One PostgreSQL for one test process, handing out an empty database at the schema's head."""

    def __init__(self, directory: Path) -> None:
        self.instance = postgres.PostgresInstance(directory, name=DATABASE)
        self._admin = None
        self._tables: list[str] = []

    @property
    def url(self) -> str:
        return self.instance.url

    def start(self) -> ClusterForTests:
        problem = postgres.missing()
        if problem:
            unavailable(f"the server's PostgreSQL tests need {problem}")
        self.instance.start()
        from server.db.engine import schema_metadata

        self._migrate()
        self._tables = [table.name for table in schema_metadata().sorted_tables]
        self._admin = create_engine(self.url, isolation_level="AUTOCOMMIT")
        return self

    def fresh(self) -> str:
        """The database, emptied (and nobody else connected); its URL. A test that changed the
        schema itself (the migration tests) leaves a database that is made again from nothing."""
        from server.db import migrate

        assert self._admin is not None
        with self._admin.connect() as connection:
            connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            try:
                if migrate.current(connection) != migrate.head():
                    raise LookupError("not at head")
                connection.execute(text("SET session_replication_role = replica"))  # triggers
                connection.execute(text(
                    f"TRUNCATE {', '.join(self._tables)} RESTART IDENTITY CASCADE"))
            except (DBAPIError, LookupError):
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
                self._migrate()
        return self.url

    def _migrate(self) -> None:
        from server.db.engine import close_database, open_database

        close_database(open_database(self.instance.directory, self.url))

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.dispose()
        self.instance.stop()
