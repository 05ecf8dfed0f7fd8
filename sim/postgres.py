"""A throw-away PostgreSQL server for tests, benches and fleet rigs: Debian's package, a cluster
in a directory of ours, run as an unprivileged user, reachable only through a Unix socket.

PostgreSQL refuses to run as root, so when we are root the cluster belongs to the `postgres`
user the Debian package creates and the server runs under `runuser`; otherwise it runs as us.
Nothing listens on TCP (listen_addresses=''): the socket lives in the cluster's home, so two
instances never collide and nothing outside this machine can reach them. Settings favour speed
over durability (fsync off), which is right for a cluster that is deleted after the run and wrong
anywhere else.

The cluster's home is a short directory of its own under /tmp named after the caller's directory
(/tmp/batm-pg-<hash>: data/, the socket, postgres.log), owned by the user PostgreSQL runs as, not
the caller's directory itself: a Unix socket path holds 107 bytes, and the postgres user must
reach its files through every parent directory — which pytest keeps making 0700 again under
/tmp/pytest-of-root whenever any pytest process starts. stop() copies the log into the caller's
directory and, unless `keep`, deletes the home.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

PACKAGE = "postgresql"
START_TIMEOUT = 60.0
RUN_AS = "postgres"  # when we are root
PORT = 5432  # only names the socket file (.s.PGSQL.5432); there is no TCP listener


class PostgresError(RuntimeError):
    """The server could not be set up or started; str() says why and what to install."""


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory (initdb, pg_ctl), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


def missing() -> str | None:
    """None when a server can be started here, else a sentence saying what to install."""
    if server_binaries() is None:
        return f"PostgreSQL server binaries (Debian package {PACKAGE}: apt-get install {PACKAGE})"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"the {RUN_AS} user (Debian package {PACKAGE} creates it)"
    return None


class PostgresInstance:
    """One cluster for `directory`; `url` is SQLAlchemy's URL for database `name`. `keep`: a
    stop() keeps the cluster, and a start() with the same directory finds its data again.
    `durable`: PostgreSQL's own defaults (fsync, synchronous commit), for a benchmark that
    compares it with SQLite; without it a test's cluster skips what only a power cut needs."""

    def __init__(self, directory: Path | str, name: str = "batm", keep: bool = False,
                 durable: bool = False) -> None:
        self.directory = Path(directory).resolve()
        self.name = name
        self.keep = keep
        self.durable = durable
        digest = hashlib.sha256(str(self.directory).encode()).hexdigest()[:12]
        self.home = Path(tempfile.gettempdir()) / f"batm-pg-{digest}"
        self.data = self.home / "data"
        self.log = self.home / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        return self.home

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self._user()}@/{self.name}?host={self.socket_dir}"

    def _user(self) -> str:
        return RUN_AS if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *argv: str | os.PathLike[str],
             check: bool = True) -> subprocess.CompletedProcess:
        command = [str(a) for a in argv]
        if os.geteuid() == 0:
            command = ["runuser", "-u", RUN_AS, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT)
        if check and result.returncode != 0:
            raise PostgresError(f"{Path(command[-len(argv)]).name} failed: "
                                f"{(result.stderr or result.stdout).strip()[-500:]}")
        return result

    def start(self) -> PostgresInstance:
        problem = missing()
        if problem:
            raise PostgresError(f"cannot start PostgreSQL: missing {problem}")
        bin_dir = server_binaries()
        assert bin_dir is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(RUN_AS)
            os.chown(self.home, entry.pw_uid, entry.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            self._run(bin_dir / "initdb", "-D", self.data, "-A", "trust", "-E", "UTF8",
                      "--no-locale", "--no-sync")
        unsafe = "" if self.durable else \
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        options = (f"-c listen_addresses='' -c unix_socket_directories='{self.socket_dir}' "
                   f"-p {PORT} {unsafe}-c max_connections=200")
        self._run(bin_dir / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options,
                  "-w", "-t", str(int(START_TIMEOUT)), "start")
        self._create_database()
        return self

    def _create_database(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            result = self._run(server_binaries() / "createdb", "-h", self.socket_dir,
                               "-p", str(PORT), self.name, check=False)
            if result.returncode == 0 or "already exists" in result.stderr:
                return
            if time.monotonic() > deadline:
                raise PostgresError(f"createdb failed: {result.stderr.strip()[-300:]}")
            time.sleep(0.1)  # the socket may appear a moment after pg_ctl returns

    def psql(self, sql: str) -> str:
        """Run `sql` with psql (a check that needs no Python driver); its output."""
        psql = shutil.which("psql") or str(server_binaries() / "psql")
        result = self._run(psql, "-h", self.socket_dir, "-p", str(PORT), "-d", self.name,
                           "-At", "-c", sql)
        return result.stdout.strip()

    def stop(self) -> None:
        bin_dir = server_binaries()
        if bin_dir is not None and (self.data / "postmaster.pid").exists():
            with contextlib.suppress(PostgresError, subprocess.TimeoutExpired):
                self._run(bin_dir / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        if self.log.exists() and self.directory.is_dir():
            with contextlib.suppress(OSError):  # the caller's copy, for the post-mortem
                shutil.copyfile(self.log, self.directory / self.log.name)
        if not self.keep:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> PostgresInstance:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
