"""The VPN step's phase, events and effects (pure data; agent/machine/vpn.py moves them).

Scenario A: after the check-in and the MQTT credentials, the terminal brings up its WireGuard
tunnel (BringUpVpn) before it connects to the master service through it. The adapter answers
VpnUp, VpnConfigMissing (the server holds no VPN configuration for this terminal) or
VpnDown (the tunnel does not come up; also sent by the health monitor while in service).
"""

from __future__ import annotations

from dataclasses import dataclass

# VpnError kinds: what the screen tells the technician.
MISSING = "missing"  # the operator has not generated the VPN configuration
NO_HANDSHAKE = "no_handshake"  # the server's WireGuard endpoint does not answer
UNHEALTHY = "unhealthy"  # was up; no handshake / nothing received for the health window
FAILED = "failed"  # the terminal cannot make its interface (no wireguard-go, no /dev/net/tun…)
KINDS = (MISSING, NO_HANDSHAKE, UNHEALTHY, FAILED)


@dataclass(frozen=True)
class VpnError:
    kind: str
    detail: str
    endpoint: str | None = None  # "HOST:PORT" of the server's WireGuard endpoint, when known


@dataclass(frozen=True)
class VpnUp:
    generation: int


@dataclass(frozen=True)
class VpnConfigMissing:
    generation: int
    reason: str


@dataclass(frozen=True)
class VpnDown:
    generation: int
    kind: str
    reason: str
    endpoint: str | None = None


@dataclass(frozen=True)
class BringUpVpn:
    generation: int


@dataclass(frozen=True)
class TearDownVpn:
    generation: int


VpnEvent = VpnUp | VpnConfigMissing | VpnDown
VpnEffect = BringUpVpn | TearDownVpn
VPN_EVENTS = (VpnUp, VpnConfigMissing, VpnDown)
VPN_EFFECTS = (BringUpVpn, TearDownVpn)
