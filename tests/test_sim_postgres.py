"""The throw-away PostgreSQL the server tests and fleet benches run on: it starts from nothing in a
directory of ours, answers on its own socket only, and stops without leaving a process."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim import postgres
from sim.testsupport import unavailable


def require_postgres() -> None:
    problem = postgres.missing()
    if problem:
        unavailable(f"needs {problem}")


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited daemon may wait for PID 1 to reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def test_a_cluster_starts_in_its_directory_answers_and_stops(tmp_path) -> None:
    require_postgres()
    with postgres.PostgresInstance(tmp_path / "pg") as db:
        assert db.psql("select 1 + 1") == "2"
        assert db.psql("show listen_addresses") == ""  # no TCP listener at all
        assert db.url.startswith("postgresql+psycopg://")
        assert str(db.socket_dir) in db.url
        pid = int((db.data / "postmaster.pid").read_text().split()[0])
    assert not running(pid)


def test_a_second_start_reuses_a_kept_cluster(tmp_path) -> None:
    require_postgres()
    with postgres.PostgresInstance(tmp_path / "pg", keep=True) as db:
        db.psql("create table kept (x int); insert into kept values (42)")
    with postgres.PostgresInstance(tmp_path / "pg") as db:
        assert db.psql("select x from kept") == "42"
    assert not db.home.exists()  # not kept the second time: gone
    assert (tmp_path / "pg" / "postgres.log").exists()  # its log stays with the caller


def test_the_cluster_does_not_depend_on_its_callers_directory_being_reachable(tmp_path) -> None:
    """pytest makes /tmp/pytest-of-<user> 0700 whenever a pytest process starts: the user
    PostgreSQL runs as must never need to pass through it."""
    require_postgres()
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with postgres.PostgresInstance(closed / "pg") as db:
        closed.chmod(0o700)
        tmp_path.chmod(0o700)
        assert db.psql("select 1") == "1"
        db.psql("create table t (x int); insert into t values (1)")  # writes its files
        assert db.psql("select x from t") == "1"


@pytest.mark.parametrize(("args", "says"), [
    (["--replicas", "2"], "--replicas 2 needs --database postgresql"),
    (["--database", "postgresql", "--replicas", "3"], "--replicas must be 1..2"),
])
def test_rig_database_options_that_cannot_work_are_a_sentence(tmp_path, capsys, args, says):
    from sim import cli

    assert cli.main(["up", "--dir", str(tmp_path / "rig"), "--stand-ins", *args]) == 1
    assert says in capsys.readouterr().err
    assert not (tmp_path / "rig" / "rig.json").exists()
