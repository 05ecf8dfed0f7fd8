"""A rig's server on PostgreSQL, and its second replica (issue 12).

`up --database postgresql` runs a throw-away PostgreSQL for the rig in D/postgres
(sim/postgres.py: socket only, in the root namespace — a Unix socket crosses namespaces) and
gives the server `--database URL`. `up --replicas 2` (PostgreSQL only) adds a second
`batm-server run` in the server's namespace: the same address, ports 1000 above the first's
(9443 gate, 9445 console, 9883 broker), data dir D/server-2. It starts once the first is ready,
with a copy of the first's identity (CA and leaf key), as replicas behind a load balancer share
it, so that a terminal paired through either sees one server. Each replica runs its own broker
(the MQTT side of several replicas is the broker topology's business, docs/deployment.md).

rig.json: `server.database` (the URL) and `server.replicas` (the other replicas, each a server
entry: data_dir, gate, console_url, log); the first replica is `server` itself.
"""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING

from sim import postgres, readiness
from sim.children import server_command
from sim.naming import BROKER_PORT, CONSOLE_PORT, GATE_PORT, SERVER_ADDRESS
from sim.procs import Child

if TYPE_CHECKING:
    from sim.supervisor import Supervisor

POSTGRESQL = "postgresql"
DATABASES = ("sqlite", POSTGRESQL)
MAX_REPLICAS = 2
REPLICA_PORT_OFFSET = 1000
# What replicas share so that terminals see one server (server/ca.py's files).
IDENTITY = ("ca.key", "ca.pem", "server.key", "server.pem")


def check(database: str, replicas: int) -> None:
    """ValueError naming what is wrong with `--database`/`--replicas`."""
    if database not in DATABASES:
        raise ValueError(f"--database must be one of {', '.join(DATABASES)}, not {database!r}")
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ValueError(f"--replicas must be 1..{MAX_REPLICAS}, got {replicas}")
    if replicas > 1 and database != POSTGRESQL:
        raise ValueError("--replicas 2 needs --database postgresql (replicas share a database; "
                         "a SQLite file belongs to one process)")


def missing(database: str) -> str | None:
    """What this machine lacks for `database`, as a sentence; None when nothing."""
    return postgres.missing() if database == POSTGRESQL else None


class RigDatabase:
    """The rig's PostgreSQL, when it has one."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.instance = (postgres.PostgresInstance(supervisor.layout.postgres)
                         if supervisor.config.database == POSTGRESQL else None)

    @property
    def url(self) -> str | None:
        return self.instance.url if self.instance is not None else None

    def server_args(self) -> list[str]:
        return ["--database", self.url] if self.url else []

    def start(self) -> None:
        if self.instance is not None:
            self.instance.start()

    def stop(self) -> None:
        if self.instance is not None:
            self.instance.stop()


def cleanup(layout) -> list[str]:
    """After `down`: the cluster's home a killed supervisor could not delete (sim/postgres.py)."""
    home = postgres.PostgresInstance(layout.postgres).home
    if not home.exists():
        return []
    shutil.rmtree(home, ignore_errors=True)
    return [f"removed the rig's PostgreSQL ({home})"]


def _address(supervisor: Supervisor, port: int) -> str:
    if supervisor.config.use_netns:
        return f"{SERVER_ADDRESS}:{port + REPLICA_PORT_OFFSET}"
    return f"127.0.0.1:{readiness.free_port()}"


class Replica:
    """The second `batm-server run` of a rig."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        layout = supervisor.layout
        self.data_dir = layout.replica_data
        self.gate = _address(supervisor, GATE_PORT)
        self.broker = _address(supervisor, BROKER_PORT)
        self.console = _address(supervisor, CONSOLE_PORT)
        argv = server_command(supervisor, self.data_dir, self.gate, self.broker, self.console)
        self.child = Child("server-2", argv, layout.log("server-2"), supervisor.names.id,
                           netns=supervisor.server_netns())

    def start(self, deadline: float) -> None:
        """Start with the first replica's identity (it is ready: its files exist); wait."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in IDENTITY:
            shutil.copy2(self.supervisor.layout.server_data / name, self.data_dir / name)
        (self.data_dir / "server.json").unlink(missing_ok=True)
        self.child.start()
        readiness.wait_until(lambda: readiness.server_ready(self.data_dir), deadline,
                             "server replica 2", self.child)

    def rig_entry(self) -> dict:
        return {"data_dir": str(self.data_dir), "netns": self.supervisor.server_netns(),
                "address": self.gate.rsplit(":", 1)[0], "gate": self.gate,
                "broker": self.broker, "console_url": f"https://{self.console}/",
                "log": str(self.child.log_path)}


def replicas(supervisor: Supervisor) -> list[Replica]:
    return [Replica(supervisor) for _ in range(supervisor.config.replicas - 1)]


def start_replicas(supervisor: Supervisor) -> None:
    deadline = time.monotonic() + supervisor.config.timeout
    for replica in supervisor.replicas:
        replica.start(deadline)
