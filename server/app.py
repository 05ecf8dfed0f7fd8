"""`batm-server run`: the gate (HTTPS, TCP), the admin API (Unix socket) and the operator console
(HTTPS, TCP) in one asyncio loop.

One loop, so that an approval on the admin API or in the console wakes the terminal's long-poll
on the gate at once through the in-process Notifier. The runner owns the listening sockets (bound
before uvicorn starts, so the admin socket is 0600 before anyone can connect, and port 0 works for
tests) and the signals (uvicorn's own capture is per server and would fight over SIGTERM).

While running, data_dir/server.json says where to reach the server; a lock file makes sure only
one server uses a data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

import uvicorn

from batm_common.atomic import atomic_write, ensure_private_dir
from batm_common.hostaddr import ServerAddress
from batm_common.journal_logging import stderr_handler, stream_is_journal
from batm_common.sd_notify import sd_notify
from server.ca import CertificateError, ensure_certificates
from server.console.fleet import Fleet
from server.console.service import console_service
from server.db.engine import close_database, open_database
from server.db.errors import DatabaseError
from server.firmware.catalog import Catalog
from server.firmware.gate import UpgradeGate
from server.http.admin_api import create_admin_app
from server.http.console.app import create_console_app
from server.http.gate import create_gate_app
from server.local_addresses import default_advertised
from server.master.accounts import BrokerAccounts
from server.master.archives import Archives
from server.master.broker import Broker, BrokerError, BrokerSettings
from server.master.commands import Commands
from server.master.ingest import Ingest
from server.master.link import MasterLink
from server.master.monitoring import Monitoring
from server.master.service import MasterService
from server.notify import Notifier, session_serial
from server.pairing.authentication import Authenticator
from server.pairing.enrollment import Enrollment
from server.pairing.registry import Registry
from server.pairing.requests import PairingRequests
from server.pairing.transactions import Transactions
from server.paths import ADMIN_SOCKET, LOCK_FILE, SERVER_INFO
from server.settings import ServerSettings
from server.vpn.gate import VpnGate
from server.vpn.service import VpnService, start_vpn

log = logging.getLogger("batm-server")

MAX_UNIX_PATH = 107  # sun_path is 108 bytes including the terminating NUL
SHUTDOWN_GRACE = 5  # seconds; long-polls are woken at once, so this is only a safety net
LISTEN_TIMEOUT = 10  # seconds for the wake-up listener's connection (PostgreSQL) at start


class StartupError(Exception):
    """The server cannot start; str() says why, for the operator."""


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        yield  # the runner handles SIGTERM/SIGINT for both servers


class BatmServer:
    """Start with `await run()` (or `run_in_thread()` in tests); stop with `stop()`."""

    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self.data_dir = Path(settings.data_dir)
        self.notifier = Notifier()
        self.ready = threading.Event()
        self.gate_address: ServerAddress | None = None
        self.console_address: ServerAddress | None = None
        self.registry: Registry | None = None
        self.broker: Broker | None = None
        self.master: MasterService | None = None
        self.vpn: VpnService | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._gate_sock: socket.socket | None = None
        self._console_sock: socket.socket | None = None

    @property
    def admin_socket(self) -> Path:
        return self.data_dir / ADMIN_SOCKET

    @property
    def info_file(self) -> Path:
        return self.data_dir / SERVER_INFO

    def stop(self) -> None:
        """Ask the server to shut down; safe from any thread and from signal handlers."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: already down
                self._loop.call_soon_threadsafe(self._stop.set)

    # ------------------------------------------------------------------ setup steps

    def _lock(self) -> int:
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StartupError(
                f"another batm-server is already running with data dir {self.data_dir}"
            ) from None
        return fd

    @staticmethod
    def _tcp_socket(address: ServerAddress, what: str) -> socket.socket:
        host, port = address.host, address.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            return socket.create_server(
                (host, port), family=family, dualstack_ipv6=(host == "::")
            )
        except OSError as exc:
            raise StartupError(f"cannot listen on {address} ({what}): {exc.strerror}") from exc

    def _admin_socket(self) -> socket.socket:
        path = self.admin_socket
        if len(os.fsencode(path)) > MAX_UNIX_PATH:
            raise StartupError(
                f"the admin socket path {path} is longer than {MAX_UNIX_PATH} bytes; "
                "use a shorter --data-dir"
            )
        path.unlink(missing_ok=True)  # stale from a crash: the lock says nobody else uses it
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(os.fspath(path))
        os.chmod(path, 0o600)  # before listen(): nobody can connect until then
        sock.listen(128)
        return sock

    # ------------------------------------------------------------------ the run

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            ensure_private_dir(self.data_dir)
        except OSError as exc:
            raise StartupError(f"cannot use the data dir {self.data_dir}: {exc}") from exc
        lock_fd = self._lock()
        sockets: list[socket.socket] = []
        replicas = None
        try:
            self.info_file.unlink(missing_ok=True)  # stale from a crash: not ready yet
            names = self.settings.advertise or default_advertised(self.settings.listen.host)
            try:
                certs = ensure_certificates(self.data_dir, names)
            except (CertificateError, OSError) as exc:
                raise StartupError(str(exc)) from exc
            try:
                sessions = open_database(self.data_dir, self.settings.database)
            except DatabaseError as exc:
                raise StartupError(str(exc)) from exc
            replicas = self.notifier.share(sessions.kw["bind"])  # PostgreSQL: LISTEN/NOTIFY
            # Listening before serving: no other replica's wake-up may fall in between.
            if replicas is not None and not await asyncio.to_thread(replicas.listening.wait,
                                                                    LISTEN_TIMEOUT):
                raise StartupError("cannot LISTEN for the other replicas' wake-ups on the "
                                   "database (see the warnings above)")
            transactions = Transactions(sessions, notify=self.notifier.notify)
            self.registry = Registry(transactions, revoke=self._revoke)
            requests = PairingRequests(transactions, server_spki=certs.leaf_spki_der,
                                       ca_pem=certs.ca_pem, revoke=self._revoke)
            try:  # before the broker: its tunnel listener binds the tunnel address
                self.vpn = await asyncio.to_thread(start_vpn, self.settings.vpn,
                                                   self.data_dir, sessions)
            except Exception as exc:  # WgError, OSError, netlink errors: say why
                raise StartupError(f"vpn endpoint: {exc}") from exc
            self.notifier.follow_replicas(self._follow_for_vpn)
            await self._start_master(certs, sessions)
            gate_sock = self._gate_sock = self._tcp_socket(self.settings.listen, "the gate")
            sockets.append(gate_sock)
            console_sock = self._console_sock = self._tcp_socket(
                self.settings.console_address, "the console")
            sockets.append(console_sock)
            admin_sock = self._admin_socket()
            sockets.append(admin_sock)
            common = {
                "log_config": None, "access_log": False, "lifespan": "off", "ws": "none",
                "proxy_headers": False, "server_header": False,
                "timeout_graceful_shutdown": SHUTDOWN_GRACE,
            }
            upgrades = UpgradeGate(sessions, Catalog(sessions, self.data_dir),
                                   self.settings.max_concurrent_upgrades)
            gate = _Uvicorn(uvicorn.Config(
                create_gate_app(requests, Authenticator(transactions), self.notifier,
                                master=self.master, upgrades=upgrades, vpn=VpnGate(self.vpn)),
                ssl_certfile=os.fspath(certs.leaf_cert_path),
                ssl_keyfile=os.fspath(certs.leaf_key_path),
                **common,
            ))
            admin = _Uvicorn(uvicorn.Config(
                create_admin_app(self.registry, requests, master=self.master,
                                 notifier=self.notifier, vpn=self.vpn, fleet=Fleet(sessions),
                                 enrollment=Enrollment(transactions)),
                **common))
            console = _Uvicorn(uvicorn.Config(
                create_console_app(console_service(sessions, self.registry, requests,
                                                   self.vpn, master=self.master,
                                                   upgrades=upgrades)),
                ssl_certfile=os.fspath(self.settings.console_cert or certs.leaf_cert_path),
                ssl_keyfile=os.fspath(self.settings.console_key or certs.leaf_key_path),
                **common,
            ))
            await self._serve({gate: gate_sock, admin: admin_sock, console: console_sock})
            self._stop_master()
            close_database(sessions)
        finally:
            self._stop_master()
            self.notifier.unfollow_replicas(self._follow_for_vpn)
            if replicas is not None:
                replicas.stop()
            if self.vpn is not None and self.vpn.endpoint is not None:
                self.vpn.endpoint.stop()
            for sock in sockets:
                sock.close()
            self.info_file.unlink(missing_ok=True)
            self.admin_socket.unlink(missing_ok=True)
            os.close(lock_fd)

    def _revoke(self, serial: str) -> None:
        if self.master is not None:
            self.master.revoke(serial)
        if self.vpn is not None:
            self.vpn.revoke(serial)  # the WireGuard peer goes at once too

    def _follow_for_vpn(self, topic: str | None) -> None:
        """Another replica's unpair (delete, new key) ends the terminal's tunnel on this
        endpoint too; None: wake-ups may have been missed, so every peer is checked."""
        serial = None if topic is None else session_serial(topic)
        if self.vpn is None or (topic is not None and serial is None):
            return
        try:
            self.vpn.drop_revoked_peers(serial)
        except Exception as exc:  # the database away: the next wake-up or reconnect retries
            log.warning("vpn: checking peers against the database failed: %s", exc)

    async def _start_master(self, certs, sessions) -> None:
        """Mosquitto as a child, and the server's own client on its loopback listener."""
        assert self.registry is not None
        try:
            broker = Broker(
                BrokerSettings(self.data_dir, self.settings.broker_listen,
                               certs.leaf_cert_path, certs.leaf_key_path,
                               tunnel_host=self.vpn.server_ip if self.vpn is not None
                               and self.vpn.endpoint is not None else None),
                paired=self.registry.paired_serials,
            )
            broker.prepare()
            await asyncio.to_thread(broker.start)
        except (BrokerError, OSError) as exc:
            raise StartupError(f"master service: {exc}") from exc
        self.broker = broker
        notify = self.notifier.notify
        options = self.settings.master
        link = MasterLink(broker, Ingest(sessions, notify), replica=options.replica,
                          history_days=options.history_days,
                          ingest_window_ms=options.ingest_window_ms)
        accounts = BrokerAccounts(sessions, link)
        self.master = MasterService(Monitoring(sessions), Commands(sessions, notify),
                                    Archives(sessions, self.data_dir, notify), link,
                                    brokers=options.brokers, accounts=accounts)
        link.start()
        if not await asyncio.to_thread(link.wait_connected, 10):
            raise StartupError("master service: the server's client cannot log in to the broker")
        # After the link is up (it revokes); unpairs on other replicas reach it from now on.
        self.notifier.follow_replicas(accounts.follow)
        accounts.start()

    def _stop_master(self) -> None:
        if self.master is not None:
            if self.master.accounts is not None:
                self.notifier.unfollow_replicas(self.master.accounts.follow)
                self.master.accounts.stop()
            self.master.link.stop()
            self.master = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    async def _serve(self, servers: dict[_Uvicorn, socket.socket]) -> None:
        assert self._stop is not None
        tasks = [
            asyncio.create_task(server.serve(sockets=[sock])) for server, sock in servers.items()
        ]
        stopper = asyncio.create_task(self._stop.wait())
        # uvicorn has no "started" event; its flag is set within a few loop turns.
        while not all(server.started for server in servers) and not any(t.done() for t in tasks):
            await asyncio.sleep(0.01)
        if all(server.started for server in servers):
            self._announce()
            await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down")
        sd_notify("STOPPING=1")
        self.notifier.close()  # long-polls answer now instead of holding up the shutdown
        for server in servers:
            server.should_exit = True
        results = await asyncio.gather(*tasks, return_exceptions=True)
        stopper.cancel()
        for result in results:
            if isinstance(result, BaseException):
                raise StartupError(f"a listener failed: {result!r}")

    def _announce(self) -> None:
        assert self._gate_sock is not None and self._console_sock is not None
        port = self._gate_sock.getsockname()[1]
        self.gate_address = ServerAddress(self.settings.listen.host, port)
        self.console_address = ServerAddress(self.settings.console_address.host,
                                             self._console_sock.getsockname()[1])
        info = {
            "pid": os.getpid(),
            "gate": str(self.gate_address),
            "console": str(self.console_address),
            "admin_socket": os.fspath(self.admin_socket.absolute()),
            "mqtt": f"{self.settings.broker_listen.host}:{self.broker.mqtt_port}"
            if self.broker else None,
        }
        atomic_write(self.info_file, (json.dumps(info) + "\n").encode(), mode=0o644)
        sd_notify("READY=1")
        log.info("ready: gate on https://%s, console on https://%s/, admin API on %s",
                 self.gate_address, self.console_address, self.admin_socket)
        self.ready.set()


class _OneLineFormatter(logging.Formatter):
    def formatException(self, ei) -> str:
        return super().formatException(ei).replace("\n", " | ")


def configure_logging(level: int = logging.INFO) -> None:
    if stream_is_journal(sys.stderr):
        handler = stderr_handler()  # journald: a priority per line, its own timestamps
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn says "Started/Finished server process" once per server; our own lines say more.
    logging.getLogger("uvicorn").setLevel(logging.WARNING)


def run_server(settings: ServerSettings) -> int:
    """The `batm-server run` process: serve until SIGTERM/SIGINT; returns the exit status."""
    configure_logging()
    server = BatmServer(settings)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.stop)
        await server.run()

    try:
        asyncio.run(main())
    except StartupError as exc:
        log.error("%s", exc)
        return 1
    log.info("stopped")
    return 0
