"""The master service's broker: a real Mosquitto, configured and supervised by `batm-server run`.

Everything lives in data_dir/mosquitto/: the generated mosquitto.conf and terminal-topics.acl
(each terminal's own topics), the dynamic-security plugin's dynamic-security.json (the
terminals' users, their shared role; master/dynsec.py says how the two divide the checks),
the admin user's password (admin.secret, 0600) and the broker's persistence file (retained
status, queued QoS 1 messages).

Credentials are username/password clients of the dynamic-security plugin, not client
certificates: Mosquitto issue #2999 — dynsec's disable/delete does not bind certificate-
authenticated clients — while disabling (or deleting) a password client kicks its live session
and refuses its reconnects. That is the revocation an unpair needs (docs/protocol.md §7); an
unpair only disables (master/link.py, `revoke`, says why).

The server's database is the source of truth. Before every broker start the dynsec file is
reconciled with it (clients of terminals that are no longer paired are removed, the ones an
unpair disabled among them; the admin user's password is re-derived from admin.secret; every
terminal gets today's shared role, in place of the role of its own an older server made), so
an unpair made while the broker was down takes effect before the broker accepts its first
connection. While it runs, changes go
through $CONTROL/dynamic-security/v1 (master/link.py), which the plugin persists itself.

Client ids (issue 13, item 1: no terminal credential may affect another client). Mosquitto
disconnects a live session when another client connects with the same client id, once that
client has authenticated. So a client id is bound to the credentials that may use it:
- the terminals' listener sets `use_username_as_clientid true`, which replaces every client id
  there by the username (the serial) *before* authentication;
- every terminal's dynsec client is bound to one client id (`clientid`): its serial, or
  "<serial>@vpn" in scenario A (vpn/gate.py) — on any listener, its credentials with another id
  fail (CONNACK not authorized) without touching the session that id belongs to;
- the server's own user and client id contain ':', which no serial may contain
  (pairing/registry.py SERIAL_PATTERN): no terminal's username or id can ever equal them —
  nor a replica's id, batm:master:<replica> (master/link.py). The users, roles and ACLs
  themselves: master/dynsec.py.

Scenario A (docs/protocol.md § VPN): with a tunnel host, Mosquitto gets a second TLS listener on
the server's tunnel address (198.51.100.1, same port). A scenario-A terminal's client is bound to
"<serial>@vpn", which the terminals' listener never produces (the id there is the username), so
its credentials fail there whatever it sends; on the tunnel listener it connects as
"<serial>@vpn" and is accepted.

The broker's persistence file is saved every second (autosave_interval 1), or less often for a
fleet (`autosave_seconds`: the whole file is written each time), but nothing depends on it: the
terminal deletes an event only on the server's own acknowledgement.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import pwd
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from batm_common.atomic import atomic_write, ensure_private_dir
from batm_common.hostaddr import ServerAddress
from server.master.dynsec import acl_file, reconcile_dynsec, with_accounts

log = logging.getLogger("batm-server.broker")

BROKER_DIR = "mosquitto"
CONF_FILE = "mosquitto.conf"
DYNSEC_FILE = "dynamic-security.json"
ACL_FILE = "terminal-topics.acl"  # each terminal's own topics (master/dynsec.py, acl_file)
# A copy of the plugin's file as last seen whole. Debian's Mosquitto 2.0.11 rewrites the file in
# place (its temporary name is cut to the file's own length; fixed upstream in 2.0.16), so a
# broker killed mid-save leaves it truncated, and without the copy every terminal of the broker
# would need new credentials at once.
DYNSEC_SNAPSHOT = "dynamic-security.snapshot.json"
ADMIN_SECRET_FILE = "admin.secret"
# Mosquitto refuses bigger packets outright (and disconnects the sender); the application limit
# (64 KiB, answered with an error result) sits well below it.
MAX_PACKET = 256 * 1024
PLUGIN_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/arm-linux-gnueabihf/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
)
# TLS 1.2 suites the terminals' listeners accept: AEAD only, as the gate (issue 13, item 8: the
# broker used to accept ECDHE-ECDSA-AES128-SHA, CBC with SHA-1). The server's key is ECDSA;
# TLS 1.3's suites are all AEAD.
AEAD_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
))
RESTART_DELAY = 0.5
SPAWN_ATTEMPTS = 3  # with fresh ports after a failed start (see _spawn)
FD_RESERVE = 256  # descriptors Mosquitto keeps for itself (see max_connections)


class BrokerError(Exception):
    """The broker cannot be set up or started; str() says why, for the operator."""


def find_mosquitto() -> tuple[str, str]:
    """(mosquitto binary, dynamic-security plugin); BrokerError naming the package if absent."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None
    )
    plugin = next((p for p in PLUGIN_CANDIDATES if os.path.exists(p)), None)
    if binary is None or plugin is None:
        missing = "mosquitto" if binary is None else "its dynamic-security plugin"
        raise BrokerError(
            f"{missing} is not installed; install the Debian package 'mosquitto' (2.0 or later)"
        )
    return binary, plugin


@dataclass(frozen=True)
class BrokerSettings:
    data_dir: Path
    listen: ServerAddress  # the TLS listener terminals connect to
    cert: Path
    key: Path
    tunnel_host: str | None = None  # scenario A: a listener on the VPN address (see above)


def tunnel_listener_lines(tunnel_host: str, port: int, cert: Path, key: Path) -> list[str]:
    """Appended right after the terminals' listener in mosquitto.conf (see the module doc)."""
    return [
        "# scenario A terminals: through the WireGuard tunnel only",
        f"listener {port} {tunnel_host}",
        f"certfile {cert}",
        f"keyfile {key}",
        "tls_version tlsv1.2",
        f"ciphers {AEAD_CIPHERS}",
        "",
    ]


def fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (Mosquitto, a child, inherits it)
    and return it: one TLS connection per terminal is one descriptor in the broker."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def max_connections(limit: int) -> int:
    """Mosquitto's max_connections for a descriptor limit: what is left after its files,
    listeners and persistence (FD_RESERVE), so that a fleet beyond it gets a refused CONNECT
    rather than a broker failing accept() with EMFILE."""
    return max(64, limit - FD_RESERVE)


def autosave_seconds(terminals: int) -> int:
    """How often Mosquitto writes its whole persistence file (every session, every retained
    status): each second up to 1,000 terminals, then a second more per 1,000, at most a minute
    (2,000 terminals: 0.7 % of a core for the 1-second autosave alone, measured)."""
    return max(1, min(60, terminals // 1000))


def queued_messages(terminals: int) -> int:
    """Mosquitto's max_queued_messages: how far a session may fall behind before the broker
    drops what it would deliver. The one session that falls behind is the server's ingestion
    (every terminal's status, one per 10 s each): a minute of a fleet's statuses, so that a
    restart or a database pause loses nothing; 10,000 at least (50,000 terminals: 300,000,
    ≈ 150 MB of broker memory only while the server is that far behind). A terminal's own
    session holds only its commands and acknowledgements."""
    return max(10_000, 6 * terminals)


def _pick_free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _set_pdeathsig() -> None:
    """In the child: die with the server, even when the server is SIGKILLed."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Broker:
    """Mosquitto as a supervised child: configure, start, restart on death, stop."""

    def __init__(self, settings: BrokerSettings, paired: Callable[[], Iterable[str]]):
        self.settings = settings
        self.dir = Path(settings.data_dir) / BROKER_DIR
        self._paired = paired
        self.binary, self.plugin = find_mosquitto()
        self.admin_port = 0
        self.mqtt_port = settings.listen.port
        self.admin_password = ""
        self._proc: subprocess.Popen | None = None
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._accounts: dict[str, dict] = {}  # bulk accounts for the next start
        self._mqtt_picked = False
        self._terminals = 0  # paired at the last start (autosave_seconds)
        self.restarts = 0

    # ------------------------------------------------------------------ files

    def prepare(self) -> None:
        """Make the directory, the admin secret and the ports; the files come at each start."""
        ensure_private_dir(self.dir)
        secret = self.dir / ADMIN_SECRET_FILE
        if not secret.exists():
            atomic_write(secret, (secrets.token_urlsafe(32) + "\n").encode(), mode=0o600)
        self.admin_password = secret.read_text().strip()
        self.admin_port = _pick_free_port()
        self._mqtt_picked = self.mqtt_port == 0
        if self._mqtt_picked:
            self.mqtt_port = _pick_free_port(self.settings.listen.host)

    def _write_config(self) -> None:
        host = self.settings.listen.host
        user = pwd.getpwuid(os.getuid()).pw_name
        # A listener's option: written before any `listener` line it would make Mosquitto open
        # its default listener (0.0.0.0:1883) as well.
        limit = ["# one descriptor per terminal: bounded by the open-file limit the server runs",
                 "# with (LimitNOFILE in batm-server.service; docs/deployment.md, fleets)",
                 f"max_connections {max_connections(fd_limit())}"]
        lines = [
            "# Generated by batm-server at every broker start; edits are overwritten.",
            "per_listener_settings false",
            "allow_anonymous false",
            f"user {user}",
            "persistence true",
            f"persistence_location {self.dir}/",
            # seconds; correctness does not depend on it
            f"autosave_interval {autosave_seconds(self._terminals)}",
            f"max_packet_size {MAX_PACKET}",
            "max_inflight_messages 100",
            "set_tcp_nodelay true",  # small QoS 1 packets and their acks: no Nagle delays
            f"max_queued_messages {queued_messages(self._terminals)}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            f"plugin {self.plugin}",
            f"plugin_opt_config_file {self.dir / DYNSEC_FILE}",
            # asked after the plugin, for what the plugin leaves to it (master/dynsec.py)
            f"acl_file {self.dir / ACL_FILE}",
            "",
            "# the server's own client",
            f"listener {self.admin_port} 127.0.0.1",
            "",
            "# terminals: TLS with the server's certificate (the key they pinned at pairing)",
            f"listener {self.mqtt_port} {host}",
            f"certfile {self.settings.cert}",
            f"keyfile {self.settings.key}",
            "tls_version tlsv1.2",
            f"ciphers {AEAD_CIPHERS}",
            "# the client id is the username (the serial): no terminal can take another's id,",
            "# and scenario-A terminals (bound to <serial>@vpn) are refused on this listener",
            "use_username_as_clientid true",
            *limit,
            "",
        ]
        if self.settings.tunnel_host:
            lines += tunnel_listener_lines(self.settings.tunnel_host, self.mqtt_port,
                                           self.settings.cert, self.settings.key)
            lines += limit
        atomic_write(self.dir / ACL_FILE, acl_file().encode(), mode=0o600)
        atomic_write(self.dir / CONF_FILE, "\n".join(lines).encode(), mode=0o600)

    def _write_dynsec(self) -> None:
        path = self.dir / DYNSEC_FILE
        data: dict = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as exc:
                quarantine = path.with_name(f"{DYNSEC_FILE}.corrupt-{int(time.time())}")
                os.replace(path, quarantine)
                data = self._last_snapshot()
                log.error("broker: %s was unusable (%s); moved to %s — %s", path, exc,
                          quarantine.name,
                          "the accounts are restored from the last whole copy; terminals granted "
                          "since then get new credentials at their next check-in" if data else
                          "terminals will get new credentials at their next check-in")
        paired = set(self._paired())
        data = with_accounts(data, {serial: hashed for serial, hashed in self._accounts.items()
                                    if serial in paired})
        self._accounts.clear()
        data, removed = reconcile_dynsec(data, self.admin_password, paired)
        if removed:
            log.info("broker: revoked MQTT access of %s (no longer paired)", ", ".join(removed))
        contents = (json.dumps(data, indent=1) + "\n").encode()
        atomic_write(path, contents, mode=0o600)
        self.snapshot_dynsec(contents)

    def snapshot_dynsec(self, contents: bytes) -> None:
        """Keep `contents`, the plugin's file seen whole (it parsed), for a restart after a
        broker killed mid-save (DYNSEC_SNAPSHOT); master/accounts.py calls it at every sweep."""
        atomic_write(self.dir / DYNSEC_SNAPSHOT, contents, mode=0o600)

    def _last_snapshot(self) -> dict:
        try:
            data = json.loads((self.dir / DYNSEC_SNAPSHOT).read_bytes())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    # ------------------------------------------------------------------ process

    def start(self) -> None:
        with self._lock:
            self._stopping.clear()
            self._spawn()
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(target=self._watch, name="broker-watch",
                                                 daemon=True)
                self._watcher.start()

    def _spawn(self) -> None:
        self._terminals = len(list(self._paired()))
        for attempt in range(1, SPAWN_ATTEMPTS + 1):
            self._write_config()
            self._write_dynsec()
            self._proc = subprocess.Popen(
                [self.binary, "-c", os.fspath(self.dir / CONF_FILE)],
                stdin=subprocess.DEVNULL, preexec_fn=_set_pdeathsig,
                # Mosquitto sends its own READY=1, which systemd refuses from a child of the
                # unit (and logs); the server says when it is ready.
                env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"},
            )
            try:
                self._wait_listening()
                break
            except BrokerError:
                if attempt == SPAWN_ATTEMPTS or self.restarts:
                    raise  # after the first start the server's client knows the admin port
                # A port picked free may be taken by someone's outgoing connection before
                # Mosquitto binds it (a busy machine, a fleet's connection churn): pick again.
                log.warning("broker: mosquitto did not start (attempt %d); trying new ports",
                            attempt)
                self.admin_port = _pick_free_port()
                if self._mqtt_picked:
                    self.mqtt_port = _pick_free_port(self.settings.listen.host)
        log.info("broker: mosquitto (pid %s) ready: terminals on %s:%s (TLS)",
                 self._proc.pid, self.settings.listen.host, self.mqtt_port)

    def _wait_listening(self, timeout: float = 60.0) -> None:  # a fleet's files take a while
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"mosquitto exited with {self._proc.returncode} at start; see the log above "
                    f"(config {self.dir / CONF_FILE})"
                )
            # Both listeners: Mosquitto binds them in order and exits when a later one fails,
            # so the first alone may answer for a moment.
            if all(_accepts(host, port) for host, port in self._listeners()):
                return
            time.sleep(0.02)
        raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{self.admin_port} and "
                          f"{self.settings.listen.host}:{self.mqtt_port} in time")

    def _listeners(self) -> list[tuple[str, int]]:
        host = self.settings.listen.host
        if host in ("0.0.0.0", "::", ""):
            host = "::1" if host == "::" else "127.0.0.1"
        return [("127.0.0.1", self.admin_port), (host, self.mqtt_port)]

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc = self._proc
            if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                with self._lock:
                    if self._proc is proc and not self._stopping.is_set():
                        log.error("broker: mosquitto exited with %s; restarting it",
                                  proc.returncode)
                        time.sleep(RESTART_DELAY)
                        try:
                            self.restarts += 1
                            self._spawn()
                        except BrokerError as exc:
                            log.error("broker: restart failed: %s", exc)
            self._stopping.wait(0.2)

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # mosquitto saves its persistence file on SIGTERM
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def add_accounts(self, accounts: dict[str, dict]) -> None:
        """Write these terminals' accounts ({serial: password hash}) into the plugin's file
        and restart once (pairing/enrollment.py says why not one by one)."""
        with self._lock:
            log.info("broker: adding %d terminal account(s); restarting", len(accounts))
            self._accounts.update(accounts)
            self._terminate()
            self.restarts += 1
            self._spawn()

    def restart(self) -> None:
        """Stop and start again (the admin API's POST /api/v1/broker/restart)."""
        with self._lock:
            log.info("broker: restarting on request")
            self._terminate()
            self.restarts += 1
            self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            self._terminate()
        if self._watcher is not None:
            self._watcher.join(2)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


def kill_quietly(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.kill()
