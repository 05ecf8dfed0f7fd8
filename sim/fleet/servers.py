"""The servers a fleet runs against: R `batm-server run` replicas, each with its own Mosquitto,
on one database (the data dir's SQLite file for one replica, or a shared PostgreSQL).

Layout in D (kept between runs, so a provisioned fleet is reused):
  server/, server.log, mqtt-port        replica 1 (the layout of a one-server fleet)
  server-I/, server-I.log, mqtt-port-I  replica I ≥ 2
  postgres/                             `--database postgresql`: a cluster of Debian's
                                        PostgreSQL kept for the next run (sim/postgres.py)

With R > 1 every replica runs as `--replica rI` with `--brokers OWN,OTHER,…` (the fleet's
brokers, its own first: server/master/assignment.py assigns each terminal one by its serial),
and replicas 2… start with replica 1's identity (CA and leaf, as sim/replicas.py does), so that
one CA verifies every broker and gate. A broker's port stays the same from run to run: the
fleet keeps the broker address its credentials named, as a production fleet keeps 8883.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from batm_common.atomic import atomic_write
from sim import postgres

FIXED_PORTS = (20000, 32000)  # where brokers' ports are chosen: under ip_local_port_range
SERVER_START_TIMEOUT = 60.0
IDENTITY = ("ca.key", "ca.pem", "server.key", "server.pem")  # what replicas share (server/ca.py)
SQLITE, POSTGRESQL = "sqlite", "postgresql"


class FleetError(Exception):
    """The fleet cannot run; str() says why."""


def check_topology(replicas: int, database: str) -> None:
    """FleetError naming what is wrong with --replicas/--database."""
    if replicas < 1:
        raise FleetError(f"--replicas must be ≥ 1, got {replicas}")
    if database not in (SQLITE, POSTGRESQL) and not database.startswith("postgresql+"):
        raise FleetError(f"--database must be sqlite, postgresql or a postgresql+psycopg:// URL, "
                         f"not {database!r}")
    if replicas > 1 and database == SQLITE:
        raise FleetError(f"--replicas {replicas} needs --database postgresql (replicas share one "
                         "database; a SQLite file belongs to one process)")


class ServerProcess:
    """One replica: its process, what its server.json says, its broker's pid."""

    def __init__(self, directory: Path, index: int, mqtt_port: int, extra: list[str]):
        suffix = "" if index == 1 else f"-{index}"
        self.name = f"r{index}"
        self.data_dir = directory / f"server{suffix}"
        self.log_path = directory / f"server{suffix}.log"
        self.broker = f"127.0.0.1:{mqtt_port}"
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.broker_pid: int | None = None

    def launch(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.data_dir / "server.json").unlink(missing_ok=True)
        binary = Path(sys.executable).with_name("batm-server")
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child's)
        self.proc = subprocess.Popen(
            [str(binary), "run", "--data-dir", str(self.data_dir), "--listen", "127.0.0.1:0",
             "--console-listen", "127.0.0.1:0", "--mqtt-listen", self.broker, *self.extra],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()

    def _wait(self, ready, deadline: float, what: str) -> None:
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise FleetError(f"batm-server {self.name} exited with {self.proc.returncode} "
                                 f"at start; see {self.log_path}")
            with contextlib.suppress(OSError, ValueError):
                if ready():
                    return
            time.sleep(0.05)
        raise FleetError(f"batm-server {self.name} had not {what} in {SERVER_START_TIMEOUT:.0f} "
                         f"s; see {self.log_path}")

    def wait_identity(self, deadline: float) -> None:
        self._wait(lambda: all((self.data_dir / name).exists() for name in IDENTITY), deadline,
                   "made its CA and certificate")

    def wait_ready(self, deadline: float) -> None:
        def ready() -> bool:
            self.info = json.loads((self.data_dir / "server.json").read_text())
            return True

        self._wait(ready, deadline, "started")

    @property
    def pid(self) -> int:
        return int(self.info["pid"])

    def stop(self) -> None:
        """SIGTERM; then wait for its broker too: the next run binds the same port."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        deadline = time.monotonic() + 30
        while self.broker_pid and Path(f"/proc/{self.broker_pid}").exists() \
                and time.monotonic() < deadline:
            time.sleep(0.05)


def _mqtt_port(directory: Path, index: int, taken: set[int]) -> int:
    path = directory / ("mqtt-port" if index == 1 else f"mqtt-port-{index}")
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text())
    # Below the ephemeral range: while a broker restarts (bulk accounts), one of the fleet's
    # own outgoing connections could otherwise hold the port.
    for port in random.sample(range(*FIXED_PORTS), 200):
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        atomic_write(path, f"{port}\n".encode())
        return port
    raise FleetError(f"no free port in {FIXED_PORTS[0]}-{FIXED_PORTS[1]} for a broker")


class FleetServers:
    """Start with start(), stop with stop() (also after a failed start)."""

    def __init__(self, directory: Path, replicas: int, database: str, extra: tuple[str, ...]):
        check_topology(replicas, database)
        self.directory = directory
        self.database = database
        self.postgres = (postgres.PostgresInstance(directory / "postgres", keep=True,
                                                   durable=True)
                         if database == POSTGRESQL else None)
        directory.mkdir(parents=True, exist_ok=True)
        ports: list[int] = []
        for index in range(1, replicas + 1):
            ports.append(_mqtt_port(directory, index, set(ports)))
        brokers = [f"127.0.0.1:{port}" for port in ports]
        self.replicas = []
        for index, port in enumerate(ports, 1):
            args = list(extra)
            if replicas > 1:
                own = brokers[index - 1]
                args += [f"--replica=r{index}",
                         "--brokers=" + ",".join([own] + [b for b in brokers if b != own])]
            self.replicas.append(ServerProcess(directory, index, port, args))
        self.brokers = brokers

    @property
    def database_url(self) -> str | None:
        if self.postgres is not None:
            return self.postgres.url
        return None if self.database == SQLITE else self.database

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.postgres is not None:
            problem = postgres.missing()
            if problem:
                raise FleetError(f"--database postgresql needs {problem}")
            if not self.postgres.directory.exists():
                # The cluster lives outside D (sim/postgres.py: a short socket path); a D that
                # was removed takes its fleet along, so its database goes too.
                shutil.rmtree(self.postgres.home, ignore_errors=True)
            try:
                self.postgres.start()
            except postgres.PostgresError as exc:
                raise FleetError(str(exc)) from exc
        url = self.database_url
        for replica in self.replicas:
            if url:
                replica.extra = [f"--database={url}", *replica.extra]
        first, *others = self.replicas
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        # The others start once the first made the identity they copy (its files are written
        # atomically, the key first); they may migrate the database together (under a lock).
        first.launch()
        if others:
            first.wait_identity(deadline)
        for replica in others:
            replica.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            for name in IDENTITY:
                if not (replica.data_dir / name).exists():
                    shutil.copy2(first.data_dir / name, replica.data_dir / name)
            replica.launch()
        for replica in self.replicas:
            replica.wait_ready(deadline)

    def owner(self, broker: str | None) -> ServerProcess:
        """The replica that runs `broker` (the first when it is none of theirs)."""
        return next((r for r in self.replicas if r.broker == broker), self.replicas[0])

    def postgres_pid(self) -> int | None:
        if self.postgres is None:
            return None
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.postgres.data / "postmaster.pid").read_text().split()[0])
        return None

    def stop(self) -> None:
        for replica in self.replicas:
            if replica.proc is not None and replica.proc.poll() is None:
                replica.proc.send_signal(signal.SIGTERM)  # all at once, then wait for each
        for replica in self.replicas:
            replica.stop()
        if self.postgres is not None:
            self.postgres.stop()
