"""Scenario A on the simulated rig: the server's WireGuard endpoint and the terminals' tunnels.

    server netns   batm-server run … --vpn-endpoint 192.0.2.1:51820 --vpn-interface wg<id>s
                   → wg<id>s 198.51.100.1/24 (wireguard-go, child of the server), UDP 51820
    terminal i     batm-agent run … --vpn-interface wg<id>t<i> --vpn-health-window 20
                   → wg<id>t<i> 198.51.100.x/24 once the operator generated its configuration

Only `up --scenario A` on namespaces starts the endpoint (without namespaces the interface would
sit in the root namespace: left out, and rig.json says so). Every terminal gets a rig-unique
interface name either way (wireguard-go's UAPI socket path /var/run/wireguard/NAME.sock is
global across namespaces) and a short health window, so fault tests finish in seconds.
rig.json's server.vpn tells the HIL suite where the endpoint is (hil_tests read "vpn").
`down` kills what is left (wireguard-go carries the rig's marker like every child) and removes
the rig's stale UAPI sockets.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from sim.naming import SERVER_ADDRESS, SPARE_NET, RigNames

if TYPE_CHECKING:
    from sim.supervisor import Supervisor

VPN_PORT = 51820
HEALTH_WINDOW = "20"  # seconds: the MQTT keepalive (5 s) keeps traffic flowing both ways
CHECK_INTERVAL = "1"
UAPI_DIR = Path("/var/run/wireguard")


def server_interface(names: RigNames) -> str:
    return f"wg{names.id}s"


def terminal_interface(names: RigNames, index: int) -> str:
    return f"wg{names.id}t{index}"


def provides_vpn(supervisor: Supervisor) -> bool:
    return supervisor.config.scenario == "A" and supervisor.config.use_netns


def server_args(supervisor: Supervisor) -> list[str]:
    if not provides_vpn(supervisor):
        return []
    return ["--vpn-endpoint", f"{SERVER_ADDRESS}:{VPN_PORT}",
            "--vpn-interface", server_interface(supervisor.names),
            "--vpn-subnet", str(SPARE_NET)]


def agent_args(supervisor: Supervisor, index: int) -> list[str]:
    return ["--vpn-interface", terminal_interface(supervisor.names, index),
            "--vpn-health-window", HEALTH_WINDOW, "--vpn-check-interval", CHECK_INTERVAL]


def rig_entry(supervisor: Supervisor) -> dict | None:
    """rig.json's server.vpn (null when the rig has no endpoint)."""
    if not provides_vpn(supervisor):
        return None
    return {
        "endpoint": f"{SERVER_ADDRESS}:{VPN_PORT}",
        "interface": server_interface(supervisor.names),
        "subnet": str(SPARE_NET),
        "server_tunnel_address": str(SPARE_NET.network_address + 1),
        "terminal_interfaces": [terminal_interface(supervisor.names, i)
                                for i in range(len(supervisor.terminals))],
        "health_window": float(HEALTH_WINDOW),
    }


def left_out(supervisor: Supervisor) -> list[str]:
    if supervisor.config.scenario == "A" and not supervisor.config.use_netns:
        return ["vpn"]
    return []


def cleanup(names: RigNames) -> list[str]:
    """Stale UAPI sockets of this rig (wireguard-go was SIGKILLed or its netns deleted)."""
    removed = []
    for sock in UAPI_DIR.glob(f"wg{names.id}*.sock"):
        with contextlib.suppress(OSError):
            sock.unlink()
            removed.append(f"socket {sock}")
    return removed
