"""The server's WireGuard endpoint (scenario A): one interface, one peer per paired terminal.

`batm-server run --vpn-endpoint HOST:PORT` makes it at start — kernel WireGuard where the kernel
has it, wireguard-go otherwise (batm_common/wireguard.py) — in the server's own network namespace,
listening on UDP PORT, address 198.51.100.1/24 by default. Its key is made here, once, in
data_dir/vpn/server.key (0600). Peers carry only keys the terminals sent (the server never
makes a terminal's key) and exactly one allowed IP, the terminal's tunnel address.

Supervision: a thread checks the interface every second; if wireguard-go died it is started
again and every peer re-applied (logged), so a crash costs the terminals one handshake.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from wireguard_tools import WireguardKey

from batm_common.atomic import atomic_write, ensure_private_dir
from batm_common.wireguard import PeerSpec, PeerState, WgError, WgInterface
from server.vpn.settings import DEFAULT_INTERFACE, DEFAULT_MTU, DEFAULT_PORT, DEFAULT_SUBNET

log = logging.getLogger("batm-server.vpn")

VPN_DIR = "vpn"
KEY_FILE = "server.key"
WATCH_INTERVAL = 1.0


@dataclass(frozen=True)
class EndpointSettings:
    data_dir: Path
    interface: str = DEFAULT_INTERFACE
    listen_port: int = DEFAULT_PORT
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network = DEFAULT_SUBNET
    mtu: int = DEFAULT_MTU

    @property
    def address(self) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        """The server's own tunnel address: the subnet's first host."""
        return ipaddress.ip_interface(f"{self.subnet.network_address + 1}/{self.subnet.prefixlen}")


def load_or_create_key(data_dir: Path) -> WireguardKey:
    directory = ensure_private_dir(Path(data_dir) / VPN_DIR)
    path = directory / KEY_FILE
    if path.exists():
        try:
            return WireguardKey(path.read_text().strip())
        except ValueError as exc:
            raise WgError(f"{path} holds no WireGuard key ({exc}); move it away to make a new "
                          "one (every terminal then needs its VPN configuration again)") from exc
    key = WireguardKey.generate()
    atomic_write(path, (str(key) + "\n").encode(), mode=0o600)
    log.info("vpn: made the server's WireGuard key (public %s)", key.public_key())
    return key


class ServerVpn:
    def __init__(self, settings: EndpointSettings):
        self.settings = settings
        self.key = load_or_create_key(settings.data_dir)
        self.public_key = str(self.key.public_key())
        self.iface = WgInterface(settings.interface,
                                 log_path=Path(settings.data_dir) / VPN_DIR / "wireguard-go.log")
        self._peers: dict[str, tuple[str, str]] = {}  # serial → (public key, tunnel IP)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self.restarts = 0

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        with self._lock:
            self._bring_up()
        log.info("vpn: endpoint %s (%s) on UDP %s, %s", self.iface.name, self.iface.kind,
                 self.settings.listen_port, self.settings.address)
        self._watcher = threading.Thread(target=self._watch, name="vpn-watch", daemon=True)
        self._watcher.start()

    def _bring_up(self) -> None:
        self.iface.create()
        self.iface.set(private_key=str(self.key), listen_port=self.settings.listen_port,
                       replace_peers=True)
        self.iface.set_address(str(self.settings.address), self.settings.mtu)
        if self._peers:
            self.iface.set(peers=tuple(self._spec(k, ip) for k, ip in self._peers.values()))

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_INTERVAL):
            with self._lock:
                if self._stopping.is_set() or (self.iface.process_alive() and self.iface.exists()):
                    continue
                log.error("vpn: the WireGuard interface %s is gone; making it again",
                          self.iface.name)
                self.restarts += 1
                try:
                    self._bring_up()
                except WgError as exc:
                    log.error("vpn: cannot restore the endpoint: %s", exc)

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(3)
        with self._lock:
            self.iface.delete()

    # ------------------------------------------------------------------ peers

    @staticmethod
    def _spec(public_key: str, tunnel_ip: str) -> PeerSpec:
        host = ipaddress.ip_address(tunnel_ip)
        return PeerSpec(public_key, (f"{host}/{host.max_prefixlen}",))

    def set_peer(self, serial: str, public_key: str, tunnel_ip: str) -> None:
        """Add (or re-key) a terminal's peer; removes whatever else held its key or address."""
        with self._lock:
            remove = {k for s, (k, ip) in self._peers.items()
                      if s != serial and (k == public_key or ip == tunnel_ip)}
            old = self._peers.get(serial)
            if old == (public_key, tunnel_ip):
                return
            if old is not None and old[0] != public_key:
                remove.add(old[0])
            self.iface.set(remove=tuple(remove), peers=(self._spec(public_key, tunnel_ip),))
            self._peers = {s: v for s, v in self._peers.items() if v[0] not in remove}
            self._peers[serial] = (public_key, tunnel_ip)
            log.info("vpn: peer of %s added (%s, key %s…)", serial, tunnel_ip, public_key[:10])

    def remove_peer(self, serial: str) -> bool:
        """Remove at once: the key can no longer complete a handshake. True if there was one."""
        with self._lock:
            old = self._peers.pop(serial, None)
            if old is None:
                return False
            self.iface.set(remove=(old[0],))
            log.info("vpn: peer of %s removed (key %s… can no longer connect)", serial,
                     old[0][:10])
            return True

    def has_peer(self, serial: str) -> bool:
        return serial in self._peers

    def peer_keys(self) -> dict[str, str]:
        """serial → the public key its peer holds now."""
        with self._lock:
            return {serial: key for serial, (key, _ip) in self._peers.items()}

    def peer_state(self, serial: str) -> PeerState | None:
        with self._lock:
            mine = self._peers.get(serial)
            if mine is None:
                return None
            try:
                peers = self.iface.peers()
            except WgError:
                return None
        return next((p for p in peers if p.public_key == mine[0]), None)
