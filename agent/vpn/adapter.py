"""The agent's VPN adapter (scenario A): the imperative side of BringUpVpn / TearDownVpn.

Bring-up: resolve the endpoint (a host name is resolved here: the UAPI takes IPs only), make
the interface if needed (kernel WireGuard, else wireguard-go as a child of the agent), set the
terminal's key and the server peer afresh (keepalive 25 s), address, MTU and routes, write the
wg-quick file, then wait for a handshake made *after* this bring-up started: a new peer has no
session, so only a working UDP path in both directions produces one. VpnUp, or VpnDown naming the
UDP port to check, or VpnConfigMissing when the check-in carried no configuration.

Health, while up (every `check_interval`): the interface must exist, the latest handshake must
be younger than max(window, 180 s) (WireGuard re-keys only every 120 s, so a younger limit would
fail a healthy tunnel), and something must have been received through the tunnel within
`window` while the terminal was sending (the MQTT keepalive and WireGuard's keepalives make
traffic both ways: silence means the path or the master service is gone). Otherwise VpnDown.

Blocking work (netlink, the UAPI socket, wireguard-go start-up) runs in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

from agent.vpn import keys
from agent.vpn.config import KEEPALIVE, VpnConfig, VpnOffer, wg_quick_text
from agent.vpn.options import CHECK_INTERVAL, DEFAULT_INTERFACE, DEFAULT_MTU, HEALTH_WINDOW
from agent.vpn.states import (
    FAILED,
    NO_HANDSHAKE,
    UNHEALTHY,
    BringUpVpn,
    TearDownVpn,
    VpnConfigMissing,
    VpnDown,
    VpnUp,
)
from batm_common.atomic import atomic_write
from batm_common.wireguard import PeerSpec, PeerState, WgError, WgInterface

log = logging.getLogger(__name__)

CONFIG_FILE = "wg-batm.conf"
HANDSHAKE_FLOOR = 180.0  # REKEY_AFTER_TIME (120 s) + keepalive + margin
UP_TIMEOUT = 5.0  # how long a bring-up waits for the handshake
KICK = 1.0  # WireGuard itself re-sends a lost initiation only after 5 s (REKEY_TIMEOUT): a
# fresh peer every second re-sends it sooner, so a path that comes back is used at once

MISSING_TEXT = {
    "not_configured": "the operator has not generated this terminal's VPN configuration",
    "endpoint_disabled": "the server runs no VPN endpoint",
    "no_key": "the server has no VPN key of this terminal yet",
}


class VpnAdapter:
    def __init__(self, state_dir: Path, *, interface: str = DEFAULT_INTERFACE,
                 mtu: int = DEFAULT_MTU, health_window: float = HEALTH_WINDOW,
                 check_interval: float = CHECK_INTERVAL, up_timeout: float = UP_TIMEOUT,
                 dispatch: Callable[[object], None] = lambda _e: None,
                 generation: Callable[[], int] = lambda: 0):
        self.state_dir = Path(state_dir)
        self.iface = WgInterface(interface, log_path=self.state_dir / "wireguard-go.log")
        self.mtu = mtu
        self.health_window = health_window
        self.check_interval = check_interval
        self.up_timeout = up_timeout
        self._dispatch = dispatch
        self._generation = generation
        self.offer: VpnOffer | None = None
        self.state = "not used"
        self.last_error: str | None = None
        self.endpoint_ip: str | None = None
        self.peer: PeerState | None = None
        self._lock: asyncio.Lock | None = None
        self._monitor: asyncio.Task | None = None
        self._peer_spec: PeerSpec | None = None

    @property
    def config_file(self) -> Path:
        return self.state_dir / CONFIG_FILE

    # ------------------------------------------------------------------ check-in

    def public_key(self) -> str:
        """The terminal's WireGuard public key (base64); the key is made on first use."""
        return str(keys.load_or_create(self.state_dir).public_key())

    def take_offer(self, answer: dict) -> VpnOffer:
        """Keep what the check-in said; VpnConfigError when its VPN part is malformed."""
        offer = VpnOffer.from_checkin(answer)
        self.offer = offer
        if not offer.required:
            self.state = "not used"
        return offer

    # ------------------------------------------------------------------ effects

    async def perform(self, effect: object) -> object | None:
        match effect:
            case BringUpVpn(generation=gen):
                return await self.bring_up(gen)
            case TearDownVpn():
                await self.tear_down()
        return None

    async def bring_up(self, gen: int) -> object:
        offer = self.offer
        if offer is None or offer.config is None:
            reason = offer.reason if offer else "not_configured"
            message = (offer.message if offer else None) or MISSING_TEXT.get(
                reason or "", f"the server says: {reason}")
            self.state, self.last_error = "not configured", message
            return VpnConfigMissing(gen, message)
        config = offer.config
        endpoint = str(config.endpoint)
        async with self._get_lock():
            self._stop_monitor()
            self.state = "connecting"
            try:
                self.endpoint_ip = await _resolve(config.endpoint.host, config.endpoint.port)
            except OSError as exc:
                return self._down(gen, NO_HANDSHAKE, f"cannot resolve the VPN endpoint "
                                  f"{config.endpoint.host}: {exc.strerror or exc}", endpoint)
            started = time.time()
            try:
                await asyncio.to_thread(self._configure, config, self.endpoint_ip)
            except (WgError, OSError) as exc:
                return self._down(gen, FAILED, str(exc), endpoint)
            peer = await self._wait_handshake(started, self.up_timeout)
            if peer is None:
                return self._down(gen, NO_HANDSHAKE, (
                    f"no handshake with the server's WireGuard endpoint {endpoint} "
                    f"({self.endpoint_ip}) within {self.up_timeout:g} s"), endpoint)
            self.peer, self.state, self.last_error = peer, "up", None
            log.info("VPN up: %s %s via %s (%s), handshake after %.0f ms", self.iface.name,
                     config.tunnel_address, endpoint, self.iface.kind,
                     (peer.last_handshake - started) * 1000 if peer.last_handshake else 0)
            self._monitor = asyncio.get_running_loop().create_task(self._watch(gen, config))
            return VpnUp(gen)

    def _down(self, gen: int, kind: str, reason: str, endpoint: str | None) -> VpnDown:
        self.state, self.last_error = "down", reason
        log.warning("VPN: %s", reason)
        return VpnDown(gen, kind, reason, endpoint)

    def _configure(self, config: VpnConfig, endpoint_ip: str) -> None:
        key = keys.load_or_create(self.state_dir)
        self.iface.create()
        mtu = config.mtu or self.mtu
        peer = PeerSpec(config.server_public_key, config.allowed_ips,
                        (endpoint_ip, config.endpoint.port), KEEPALIVE)
        # A new peer every time: no old session survives, so the handshake we wait for proves
        # that the UDP path works now.
        self.iface.set(private_key=str(key), peers=(peer,), replace_peers=True)
        self._peer_spec = peer
        self.iface.set_address(str(config.tunnel_address), mtu, routes=config.allowed_ips)
        text = wg_quick_text(config, key, endpoint_ip, mtu, self.iface.name)
        atomic_write(self.config_file, text.encode(), mode=0o600)

    async def _wait_handshake(self, since: float, timeout: float) -> PeerState | None:
        deadline = time.monotonic() + timeout
        kick_at = time.monotonic() + KICK
        while time.monotonic() < deadline:
            peer = await self._server_peer()
            if peer is not None and peer.last_handshake and peer.last_handshake >= since - 1:
                return peer
            if time.monotonic() >= kick_at and self._peer_spec is not None:
                kick_at = time.monotonic() + KICK
                with contextlib.suppress(WgError):
                    await asyncio.to_thread(self.iface.set, peers=(self._peer_spec,),
                                            replace_peers=True)
            await asyncio.sleep(0.02)
        return None

    async def _server_peer(self) -> PeerState | None:
        try:
            peers = await asyncio.to_thread(self.iface.peers)
        except WgError:
            return None
        return peers[0] if peers else None

    # ------------------------------------------------------------------ health

    async def _watch(self, gen: int, config: VpnConfig) -> None:
        endpoint = str(config.endpoint)
        last_rx, rx_at, tx_at_rx = -1, time.monotonic(), 0
        while True:
            await asyncio.sleep(self.check_interval)
            if self._generation() != gen:
                return
            alive = await asyncio.to_thread(self.iface.exists)
            peer = await self._server_peer() if alive else None
            now = time.monotonic()
            reason = None
            if not alive or peer is None:
                reason = f"the VPN interface {self.iface.name} is gone"
            else:
                self.peer = peer
                if peer.rx_bytes != last_rx:
                    last_rx, rx_at, tx_at_rx = peer.rx_bytes, now, peer.tx_bytes
                age = peer.handshake_age()
                limit = max(self.health_window, HANDSHAKE_FLOOR)
                if age is None or age > limit:
                    reason = (f"no handshake with the server for "
                              f"{'ever' if age is None else f'{age:.0f} s'} (limit {limit:g} s)")
                elif now - rx_at > self.health_window and peer.tx_bytes > tx_at_rx:
                    reason = (f"nothing received through the tunnel for {now - rx_at:.0f} s "
                              f"while sending (health window {self.health_window:g} s)")
            if reason is not None:
                if self._generation() == gen:
                    self._dispatch(self._down(gen, UNHEALTHY, reason, endpoint))
                return

    def _stop_monitor(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            self._monitor = None

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    # ------------------------------------------------------------------ tear-down

    async def tear_down(self) -> None:
        async with self._get_lock():
            self._stop_monitor()
            await asyncio.to_thread(self.iface.delete)
            self.state, self.peer, self.endpoint_ip = "not used", None, None
            log.info("VPN torn down (%s)", self.iface.name)

    def forget_key(self) -> None:
        """Unpair: the key (and the config file holding it) go; a new pairing makes a new one."""
        keys.forget(self.state_dir)
        self.config_file.unlink(missing_ok=True)
        self.offer = None

    def close(self) -> None:
        self._stop_monitor()
        with contextlib.suppress(Exception):
            self.iface.delete()

    # ------------------------------------------------------------------ reporting

    def handshake_age(self) -> float | None:
        if self.peer is None or self.state != "up":
            return None
        age = self.peer.handshake_age()
        return None if age is None else round(age, 1)

    def info(self) -> dict:
        """For the advanced-admin VPN page and `batm-agent status`."""
        config = self.offer.config if self.offer else None
        return {
            "state": self.state,
            "interface": self.iface.name,
            "kind": self.iface.kind,
            "tunnel_address": str(config.tunnel_address) if config else None,
            "server_tunnel_address": str(config.server_tunnel_address) if config else None,
            "endpoint": str(config.endpoint) if config else None,
            "endpoint_ip": self.endpoint_ip,
            "handshake_age": self.handshake_age(),
            "mtu": (config.mtu or self.mtu) if config else self.mtu,
            "config_file": str(self.config_file) if self.config_file.exists() else None,
            "last_error": self.last_error,
        }


async def _resolve(host: str, port: int) -> str:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"no address for {host}")
    infos.sort(key=lambda info: info[0] != socket.AF_INET)  # IPv4 first
    return infos[0][4][0]
