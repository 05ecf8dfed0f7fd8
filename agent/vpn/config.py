"""The gate's VPN answer (docs/protocol.md § VPN), validated, and the wg-quick file.

A scenario-A check-in answer carries

    "scenario": "A",
    "vpn": null | {"server_public_key": base64, "endpoint": "HOST:PORT",
                   "tunnel_address": "198.51.100.x/24", "server_tunnel_address": "198.51.100.1",
                   "allowed_ips": ["198.51.100.1/32"], "mtu"?: int},
    "vpn_reason"?: "not_configured" | "endpoint_disabled" | "no_key"    (with vpn: null)
    "vpn_message"?: a sentence for the screen's detail

Anything malformed is refused with a sentence naming the field (VpnConfigError).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass

from wireguard_tools import WireguardConfig, WireguardKey, WireguardPeer

from agent.vpn.options import MAX_MTU, MIN_MTU
from batm_common.hostaddr import AddressError, ServerAddress, parse_server_address

KEEPALIVE = 25  # seconds: keeps NAT mappings open and the server's view of the path fresh
MAX_ALLOWED_IPS = 16


class VpnConfigError(ValueError):
    """The server's VPN answer is unusable; str() names the field."""


def _key(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise VpnConfigError(f"{where}: must be a base64 WireGuard key")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VpnConfigError(f"{where}: is not base64") from None
    if len(raw) != 32:
        raise VpnConfigError(f"{where}: must be 32 bytes, got {len(raw)}")
    return str(WireguardKey(raw))


@dataclass(frozen=True)
class VpnConfig:
    server_public_key: str
    endpoint: ServerAddress  # host may be a name: the adapter resolves it itself
    tunnel_address: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    server_tunnel_address: ipaddress.IPv4Address | ipaddress.IPv6Address
    allowed_ips: tuple[str, ...]
    mtu: int | None = None

    @classmethod
    def from_answer(cls, data: object) -> VpnConfig:
        if not isinstance(data, dict):
            raise VpnConfigError("vpn: must be an object or null")
        key = _key(data.get("server_public_key"), "vpn.server_public_key")
        try:
            endpoint = parse_server_address(str(data.get("endpoint")))
        except AddressError as exc:
            raise VpnConfigError(f"vpn.endpoint: {exc}") from exc
        if ":" not in str(data.get("endpoint")).rsplit("]", 1)[-1]:
            raise VpnConfigError("vpn.endpoint: must be HOST:PORT")
        try:
            tunnel = ipaddress.ip_interface(str(data.get("tunnel_address")))
            server_ip = ipaddress.ip_address(str(data.get("server_tunnel_address")))
        except ValueError as exc:
            raise VpnConfigError(f"vpn: {exc}") from exc
        if tunnel.ip == server_ip:
            raise VpnConfigError("vpn.tunnel_address: is the server's own tunnel address")
        raw_ips = data.get("allowed_ips")
        if not isinstance(raw_ips, list) or not 1 <= len(raw_ips) <= MAX_ALLOWED_IPS:
            raise VpnConfigError(f"vpn.allowed_ips: must be a list of 1-{MAX_ALLOWED_IPS} "
                                 "networks")
        allowed = []
        for i, item in enumerate(raw_ips):
            try:
                network = ipaddress.ip_network(str(item), strict=False)
            except ValueError as exc:
                raise VpnConfigError(f"vpn.allowed_ips[{i}]: {exc}") from exc
            if network.prefixlen == 0:
                # The tunnel carries the master service only, never the terminal's default route.
                raise VpnConfigError(f"vpn.allowed_ips[{i}]: a default route is not accepted")
            allowed.append(str(network))
        mtu = data.get("mtu")
        if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int)
                                or not MIN_MTU <= mtu <= MAX_MTU):
            raise VpnConfigError(f"vpn.mtu: must be an integer {MIN_MTU}-{MAX_MTU}")
        return cls(key, endpoint, tunnel, server_ip, tuple(allowed), mtu)


@dataclass(frozen=True)
class VpnOffer:
    """What a check-in said about the VPN."""

    scenario: str  # "A" or "B"
    config: VpnConfig | None = None
    reason: str | None = None  # why config is None (scenario A)
    message: str | None = None

    @property
    def required(self) -> bool:
        return self.scenario == "A"

    @classmethod
    def from_checkin(cls, answer: dict) -> VpnOffer:
        scenario = answer.get("scenario")
        if scenario not in ("A", "B"):
            return cls("B")  # a server without VPN support: nothing to do
        if scenario == "B":
            return cls("B")
        raw = answer.get("vpn")
        reason = answer.get("vpn_reason")
        message = answer.get("vpn_message")
        if raw is None:
            return cls("A", None, str(reason or "not_configured"),
                       str(message)[:300] if message else None)
        return cls("A", VpnConfig.from_answer(raw))


def wg_quick_text(config: VpnConfig, private_key: WireguardKey, endpoint_ip: str, mtu: int,
                  interface: str) -> str:
    """A wg-quick compatible file (`wg-quick up ./wg-batm.conf`, `wg showconf` alike)."""
    peer = WireguardPeer(public_key=config.server_public_key, endpoint_host=endpoint_ip,
                         endpoint_port=config.endpoint.port, persistent_keepalive=KEEPALIVE,
                         allowed_ips=list(config.allowed_ips))
    wg = WireguardConfig(private_key=private_key, addresses=[config.tunnel_address], mtu=mtu)
    wg.add_peer(peer)
    header = (f"# Written by batm-agent: the terminal's VPN to the master service (scenario A).\n"
              f"# The agent runs it itself as interface {interface}; this copy is for\n"
              f"# inspection (wg-quick strip). Server endpoint as configured: {config.endpoint}\n")
    return header + wg.to_wgconfig(wgquick_format=True)
