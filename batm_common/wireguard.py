"""One WireGuard interface in the current network namespace: kernel or wireguard-go.

Creation tries the kernel first (`ip link add NAME type wireguard`, through pyroute2); where the
kernel has no WireGuard (EOPNOTSUPP) it starts `wireguard-go -f NAME` as a child that dies with
its parent (PR_SET_PDEATHSIG) and talks to it over its UAPI socket /var/run/wireguard/NAME.sock.
That path is global across network namespaces, so NAME must be unique on the machine (the
simulator derives it from the rig id).

Configuration uses the wireguard-tools package where it is right — key types, and parsing the
UAPI `get` answer — and a small UAPI writer of our own for `set`, because the package's
`set_config` always sends replace_peers=true (the server must add and remove one peer without
touching the others), wants IP endpoints, and writes preshared keys as base64 where the UAPI wants
hex. Kernel interfaces are configured through pyroute2's WireGuard netlink family. Addresses,
MTU and routes go through pyroute2 too.

pyroute2's synchronous API runs its own event loop: call these methods from a worker thread
(asyncio.to_thread), never from a running loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import functools
import ipaddress
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from wireguard_tools import WireguardKey
from wireguard_tools.wireguard_uapi import WireguardUAPIDevice

T = TypeVar("T")

log = logging.getLogger(__name__)

UAPI_DIR = Path("/var/run/wireguard")
IFNAME_MAX = 15
START_TIMEOUT = 5.0
UAPI_TIMEOUT = 5.0


class WgError(Exception):
    """The interface cannot be made or configured; str() says why, for a technician."""


def check_ifname(name: str) -> str:
    if not name or len(name) > IFNAME_MAX or any(
            not (c.isalnum() or c in "-_.") for c in name):
        raise WgError(f"interface name {name!r}: 1-{IFNAME_MAX} letters, digits, '-', '_', '.'")
    return name


def key_hex(key: str | WireguardKey) -> str:
    return WireguardKey(key).hex


@dataclass(frozen=True)
class PeerSpec:
    """What to set for one peer. endpoint: (IP literal, port) — resolve host names first."""

    public_key: str
    allowed_ips: tuple[str, ...]
    endpoint: tuple[str, int] | None = None
    keepalive: int | None = None


@dataclass(frozen=True)
class PeerState:
    public_key: str  # base64
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    last_handshake: float | None  # unix time; None: never
    rx_bytes: int = 0
    tx_bytes: int = 0

    def handshake_age(self, now: float | None = None) -> float | None:
        if not self.last_handshake:
            return None
        return max(0.0, (time.time() if now is None else now) - self.last_handshake)


def uapi_set_lines(private_key: str | None = None, listen_port: int | None = None,
                   peers: tuple[PeerSpec, ...] = (), remove: tuple[str, ...] = (),
                   replace_peers: bool = False) -> str:
    """The UAPI `set=1` message (keys in hex, as the UAPI wants them)."""
    lines = ["set=1"]
    if private_key is not None:
        lines.append(f"private_key={key_hex(private_key)}")
    if listen_port is not None:
        lines.append(f"listen_port={int(listen_port)}")
    if replace_peers:
        lines.append("replace_peers=true")
    for public_key in remove:
        lines += [f"public_key={key_hex(public_key)}", "remove=true"]
    for peer in peers:
        lines.append(f"public_key={key_hex(peer.public_key)}")
        if peer.endpoint is not None:
            host, port = peer.endpoint
            ip = ipaddress.ip_address(host)  # never a host name: the caller resolves
            lines.append(f"endpoint={f'[{ip}]' if ip.version == 6 else ip}:{int(port)}")
        if peer.keepalive is not None:
            lines.append(f"persistent_keepalive_interval={int(peer.keepalive)}")
        lines.append("replace_allowed_ips=true")
        lines += [f"allowed_ip={ipaddress.ip_network(a, strict=False)}"
                  for a in peer.allowed_ips]
    return "\n".join(lines) + "\n\n"


def _set_pdeathsig() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: die with the agent / server


def _off_the_event_loop(work: Callable[..., T]) -> Callable[..., T]:
    """Run `work` in a short-lived thread when the calling thread runs an asyncio loop.

    pyroute2 (0.9) drives its synchronous API with an event loop of its own, which fails in a
    thread that already runs one ("This event loop is already running", and a coroutine never
    awaited) — the agent's loop calls delete() at shutdown. Elsewhere `work` runs in place."""

    @functools.wraps(work)
    def wrapper(*args, **kwargs) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return work(*args, **kwargs)
        with ThreadPoolExecutor(1, thread_name_prefix="netlink") as pool:
            return pool.submit(work, *args, **kwargs).result()

    return wrapper


def _ipr():
    from pyroute2 import IPRoute

    return IPRoute()


@_off_the_event_loop
def link_index(name: str) -> int | None:
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


@dataclass
class WgInterface:
    name: str
    log_path: Path | None = None  # wireguard-go's output
    kind: str | None = None  # "kernel" | "wireguard-go", once made
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_ifname(self.name)

    @property
    def uapi_path(self) -> Path:
        return UAPI_DIR / f"{self.name}.sock"

    # ------------------------------------------------------------------ life

    @_off_the_event_loop
    def create(self) -> str:
        """Make the interface (or adopt ours if it is there); returns the kind."""
        if self.kind is not None and self.exists():
            return self.kind
        if self.proc is not None:
            self._stop_proc()
        self._clear_stale_socket()
        if link_index(self.name) is not None:
            if self._uapi_answers():
                self.kind = "wireguard-go"  # one we started before and lost track of
                return self.kind
            with contextlib.suppress(Exception), _ipr() as ipr:
                ipr.link("del", ifname=self.name)
        try:
            with _ipr() as ipr:
                ipr.link("add", ifname=self.name, kind="wireguard")
            self.kind = "kernel"
            return self.kind
        except Exception as exc:  # pyroute2's NetlinkError: no WireGuard in this kernel
            if getattr(exc, "code", None) not in (errno.EOPNOTSUPP, errno.ENOENT, errno.EINVAL):
                raise WgError(f"cannot create {self.name}: {exc}") from exc
        self._start_wireguard_go()
        self.kind = "wireguard-go"
        return self.kind

    def _start_wireguard_go(self) -> None:
        binary = shutil.which("wireguard-go")
        if binary is None:
            raise WgError("this kernel has no WireGuard and wireguard-go is not installed "
                          "(Debian package wireguard-go)")
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [binary, "-f", self.name], stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, preexec_fn=_set_pdeathsig,
                env=dict(os.environ, LOG_LEVEL="error", WG_PROCESS_FOREGROUND="1"),
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise WgError(f"wireguard-go exited with {self.proc.returncode} at start "
                              f"(see {self.log_path or 'its output'}; it needs /dev/net/tun "
                              "and CAP_NET_ADMIN)")
            if self._uapi_answers() and link_index(self.name) is not None:
                return
            time.sleep(0.02)
        self._stop_proc()
        raise WgError(f"wireguard-go did not open {self.uapi_path} within {START_TIMEOUT:g} s")

    def _uapi_answers(self) -> bool:
        with socket.socket(socket.AF_UNIX) as probe:
            probe.settimeout(1)
            try:
                probe.connect(os.fspath(self.uapi_path))
            except OSError:
                return False
        return True

    def _clear_stale_socket(self) -> None:
        if self.uapi_path.exists() and not self._uapi_answers():
            with contextlib.suppress(OSError):
                self.uapi_path.unlink()

    @_off_the_event_loop
    def exists(self) -> bool:
        if self.kind == "wireguard-go" and self.proc is not None and self.proc.poll() is not None:
            return False
        return link_index(self.name) is not None

    def process_alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None

    @_off_the_event_loop
    def delete(self) -> None:
        """Remove the interface (and stop wireguard-go). Safe to repeat."""
        if self.proc is not None:
            self._stop_proc()
        with contextlib.suppress(Exception), _ipr() as ipr:
            if ipr.link_lookup(ifname=self.name):
                ipr.link("del", ifname=self.name)
        self._clear_stale_socket()
        self.kind = None

    def _stop_proc(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    # ------------------------------------------------------------------ configuration

    @_off_the_event_loop
    def set(self, private_key: str | None = None, listen_port: int | None = None,
            peers: tuple[PeerSpec, ...] = (), remove: tuple[str, ...] = (),
            replace_peers: bool = False) -> None:
        if self.kind == "kernel":
            self._set_netlink(private_key, listen_port, peers, remove, replace_peers)
            return
        message = uapi_set_lines(private_key, listen_port, peers, remove, replace_peers)
        answer = self._uapi(message.encode())
        if answer.strip() != "errno=0":
            raise WgError(f"wireguard-go refused the configuration of {self.name}: "
                          f"{answer.strip() or 'no answer'}")

    def _uapi(self, message: bytes) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(UAPI_TIMEOUT)
            try:
                sock.connect(os.fspath(self.uapi_path))
                sock.sendall(message)
                data = b""
                while not data.endswith(b"\n\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError as exc:
                raise WgError(f"cannot talk to wireguard-go ({self.uapi_path}): {exc}") from exc
        return data.decode(errors="replace")

    def _set_netlink(self, private_key, listen_port, peers, remove, replace_peers) -> None:
        from pyroute2 import WireGuard

        with WireGuard() as wg:
            if private_key is not None or listen_port is not None:
                wg.set(self.name, private_key=private_key, listen_port=listen_port)
            if replace_peers:
                for peer in self.peers():
                    wg.set(self.name, peer={"public_key": peer.public_key, "remove": True})
            for public_key in remove:
                wg.set(self.name, peer={"public_key": public_key, "remove": True})
            for peer in peers:
                spec: dict = {"public_key": peer.public_key, "allowed_ips": list(peer.allowed_ips)}
                if peer.endpoint is not None:
                    spec |= {"endpoint_addr": peer.endpoint[0], "endpoint_port": peer.endpoint[1]}
                if peer.keepalive is not None:
                    spec["persistent_keepalive"] = peer.keepalive
                wg.set(self.name, peer=spec)

    @_off_the_event_loop
    def peers(self) -> list[PeerState]:
        """The peers with their latest handshake and byte counters (wireguard-tools' parser)."""
        try:
            if self.kind == "kernel":
                from wireguard_tools.wireguard_netlink import WireguardNetlinkDevice

                device = WireguardNetlinkDevice(self.name)
            else:
                device = WireguardUAPIDevice(self.uapi_path)
            try:
                config = device.get_config()
            finally:
                device.close()
        except (OSError, RuntimeError, ValueError) as exc:
            raise WgError(f"cannot read the state of {self.name}: {exc}") from exc
        return [PeerState(
            public_key=str(p.public_key),
            endpoint=f"{p.endpoint_host}:{p.endpoint_port}" if p.endpoint_host else None,
            allowed_ips=tuple(str(a) for a in p.allowed_ips),
            last_handshake=p.last_handshake or None,
            rx_bytes=p.rx_bytes or 0, tx_bytes=p.tx_bytes or 0,
        ) for p in config.peers.values()]

    def listen_port(self) -> int | None:
        if self.kind == "kernel":
            return None
        for line in self._uapi(b"get=1\n\n").splitlines():
            if line.startswith("listen_port="):
                return int(line.split("=", 1)[1])
        return None

    # ------------------------------------------------------------------ addresses, routes

    @_off_the_event_loop
    def set_address(self, cidr: str, mtu: int, routes: tuple[str, ...] = ()) -> None:
        """Address (replacing any other), MTU, link up, and a route per allowed network."""
        interface = ipaddress.ip_interface(cidr)
        with _ipr() as ipr:
            found = ipr.link_lookup(ifname=self.name)
            if not found:
                raise WgError(f"interface {self.name} vanished while being configured")
            index = found[0]
            family = socket.AF_INET if interface.version == 4 else socket.AF_INET6
            for addr in ipr.get_addr(index=index):
                if addr.get("family") != family or addr.get("scope", 0) != 0:
                    continue
                have = f"{addr.get_attr('IFA_ADDRESS')}/{addr.get('prefixlen')}"
                if ipaddress.ip_interface(have) != interface:
                    ipr.addr("del", index=index, address=addr.get_attr("IFA_ADDRESS"),
                             prefixlen=addr.get("prefixlen"))
            ipr.addr("replace", index=index, address=str(interface.ip),
                     prefixlen=interface.network.prefixlen)
            ipr.link("set", index=index, mtu=int(mtu), state="up")
            for route in routes:
                network = ipaddress.ip_network(route, strict=False)
                if network.version == interface.version and network.subnet_of(
                        interface.network):
                    continue  # the address's own prefix already routes it
                ipr.route("replace", dst=str(network), oif=index)
