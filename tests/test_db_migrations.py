"""The server's database on SQLite and PostgreSQL: one schema made by one migration history, the
same on both; old databases brought forward, newer ones refused untouched; bad URLs a sentence."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError

from server.db import migrate
from server.db.console import AuditEntry
from server.db.dialect import insert_unless_present
from server.db.engine import close_database, create_database_engine, open_database, schema_metadata
from server.db.errors import DatabaseError
from server.db.master import TerminalEvent

NOW = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)


def engine_of(sessions):
    return sessions.kw["bind"]


def test_the_migrations_make_exactly_the_tables_of_the_code(tmp_path, database_url):
    sessions = open_database(tmp_path, database_url)
    with engine_of(sessions).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), schema_metadata())
        assert migrate.current(connection) == migrate.head()
    close_database(sessions)
    # A table or column added to server/db/ without its migration shows here.
    assert differences == [], "the models and the migrations differ: write a migration " \
        "(python -m server.db.migrate revision -m ...)"


def test_the_audit_log_is_append_only_in_the_database_itself(tmp_path, database_url):
    sessions = open_database(tmp_path, database_url)
    with sessions() as session, session.begin():
        session.add(AuditEntry(at=NOW, actor="cli", action="approve", result="ok"))
    for statement in (update(AuditEntry).values(actor="someone else"), delete(AuditEntry)):
        with sessions() as session, pytest.raises(DBAPIError, match="append-only"):
            session.execute(statement)
    with sessions() as session:
        assert session.scalars(text("SELECT actor FROM audit_log")).all() == ["cli"]
    close_database(sessions)


def test_insert_unless_present_inserts_once_and_says_so(tmp_path, database_url):
    sessions = open_database(tmp_path, database_url)
    row = {"serial": "T1", "type": "boot", "at": None, "data": "{}", "received_at": NOW}
    with sessions() as session, session.begin():
        counts = [session.execute(insert_unless_present(TerminalEvent, ["event_id"],
                                                        event_id="e1", **row)).rowcount
                  for _ in range(2)]
    assert counts == [1, 0]
    close_database(sessions)


def test_a_database_made_before_migrations_is_adopted_and_upgraded(tmp_path, database_url):
    sessions = open_database(tmp_path, database_url)
    with sessions() as session, session.begin():  # the server of yesterday: tables, no version
        session.add(AuditEntry(at=NOW, actor="cli", action="approve", result="ok"))
        session.execute(text("DROP TABLE alembic_version"))
        session.execute(text("DROP TABLE seen_signatures"))  # 0002's, unknown then
        session.execute(text("DROP TABLE rate_buckets"))
    close_database(sessions)
    sessions = open_database(tmp_path, database_url)
    with sessions() as session:
        assert session.scalars(text("SELECT version_num FROM alembic_version")).one() \
            == migrate.head()
        assert session.scalars(text("SELECT actor FROM audit_log")).all() == ["cli"]
        assert session.scalars(text("SELECT count(*) FROM seen_signatures")).one() == 0
    close_database(sessions)


def test_a_database_a_newer_server_migrated_is_refused_untouched(tmp_path, database_url):
    sessions = open_database(tmp_path, database_url)
    with sessions() as session, session.begin():
        session.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    close_database(sessions)
    with pytest.raises(DatabaseError, match=r"revision 0099.*newer batm-server"):
        open_database(tmp_path, database_url)
    sessions_again = create_database_engine(database_url or f"sqlite:///{tmp_path}/batm.db")
    with sessions_again.connect() as connection:
        assert migrate.current(connection) == "0099"
    sessions_again.dispose()


@pytest.mark.parametrize(("url", "says"), [
    ("nonsense", "is not a database URL"),
    ("mysql://db/batm", "'mysql' databases are not supported"),
    ("sqlite:///{tmp}/no/such/dir/batm.db", "does not exist"),
    ("sqlite://", "needs a file"),
    ("postgresql+nodriver://u@h/db", "no driver"),
])
def test_a_database_url_we_cannot_use_is_a_sentence(tmp_path, url, says):
    with pytest.raises(DatabaseError, match=says):
        open_database(tmp_path, url.format(tmp=tmp_path))


def test_an_unreachable_postgresql_is_a_sentence_naming_it(tmp_path):
    url = f"postgresql+psycopg://nobody:secret@/batm?host={tmp_path}"  # no server there
    with pytest.raises(DatabaseError) as refused:
        open_database(tmp_path, url)
    assert "cannot open the database" in str(refused.value)
    assert "secret" not in str(refused.value)  # the password stays out of logs


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_db_upgrade_then_current_on_the_command_line(tmp_path, database_url):
    database = ["--database", database_url] if database_url else []
    if database_url:  # a fresh database: the fixture's is migrated already
        engine = create_database_engine(database_url)
        with engine.begin() as connection:
            for table in ("alembic_version", *reversed(
                    [t.name for t in schema_metadata().sorted_tables])):
                connection.execute(text(f"DROP TABLE {table} CASCADE"))
            connection.execute(text("DROP FUNCTION audit_log_refuse()"))
        engine.dispose()
    first = cli("--data-dir", str(tmp_path), *database, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert f"migrated from schema revision (empty) to {migrate.head()}" in first.stdout
    again = cli("db", "upgrade", "--data-dir", str(tmp_path), *database)
    assert f"already at schema revision {migrate.head()}" in again.stdout
    current = cli("db", "current", "--data-dir", str(tmp_path), *database)
    assert f"schema revision {migrate.head()}; this batm-server's is {migrate.head()}" \
        in current.stdout


def test_db_upgrade_of_a_bad_url_is_one_line_no_traceback(tmp_path):
    result = cli("db", "upgrade", "--data-dir", str(tmp_path), "--database", "mysql://x/y")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "batm-server: error: --database: 'mysql' databases are not supported; use "
        "sqlite:///PATH or postgresql+psycopg://USER@HOST/NAME"]


def test_run_with_a_database_it_cannot_use_exits_saying_why(tmp_path):
    data_dir = tmp_path / "d"
    result = cli("run", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0",
                 "--database", f"postgresql+psycopg://batm:secret@/batm?host={tmp_path}")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot open the database postgresql+psycopg://batm:***@/batm" in result.stderr
    assert "secret" not in result.stderr


def test_offline_commands_work_on_the_database_given(tmp_path, database_url):
    """No server running: `terminal create` and `terminal list` open the database themselves,
    the one --database names (or $BATM_DATABASE_URL), else the data dir's file."""
    database = ["--database", database_url] if database_url else []
    created = cli("terminal", "create", "T-9", "--scenario", "B", "--data-dir", str(tmp_path),
                  *database)
    assert created.returncode == 0, created.stderr
    env = None
    if database_url:  # the variable instead of the option
        import os

        env = {**os.environ, "BATM_DATABASE_URL": database_url}
    listed = cli("terminal", "list", "--json", "--data-dir", str(tmp_path), env=env)
    assert [t["serial"] for t in json.loads(listed.stdout)] == ["T-9"], listed.stderr
    assert (tmp_path / "batm.db").exists() == (database_url is None)


def test_replicas_starting_together_migrate_one_after_the_other(tmp_path, postgres_cluster):
    """Three processes upgrading an empty PostgreSQL at once: the migration lock makes the
    others wait and then find the schema made, instead of all creating the tables."""
    url = postgres_cluster.fresh()
    engine = create_database_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrades = [subprocess.Popen(
        [sys.executable, "-m", "server.cli", "db", "upgrade", "--data-dir", str(tmp_path),
         "--database", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)]
    try:
        reports = [process.communicate(timeout=60) for process in upgrades]
    finally:
        for process in upgrades:
            process.kill()
    assert [process.returncode for process in upgrades] == [0, 0, 0], reports
    outputs = sorted(out for out, _err in reports)
    assert sum("migrated from schema revision (empty)" in out for out in outputs) == 1, outputs
    engine = create_database_engine(url)
    with engine.connect() as connection:
        assert migrate.current(connection) == migrate.head()
    engine.dispose()
