"""What `batm-server run` is told about the VPN: `--vpn-endpoint HOST[:PORT]` and its companions.

Kept free of WireGuard itself, so that the CLI can offer and check the options without loading
the endpoint (vpn/endpoint.py imports the defaults from here).
"""

from __future__ import annotations

import argparse
import ipaddress
from dataclasses import dataclass

from batm_common.hostaddr import AddressError, ServerAddress, parse_server_address

DEFAULT_PORT = 51820
DEFAULT_INTERFACE = "wg-batm"
DEFAULT_SUBNET = ipaddress.IPv4Network("198.51.100.0/24")
DEFAULT_MTU = 1420


@dataclass(frozen=True)
class VpnSettings:
    """`batm-server run --vpn-endpoint HOST[:PORT] [--vpn-interface N] [--vpn-subnet S]…`"""

    endpoint: ServerAddress  # what terminals are told; PORT is also where the endpoint listens
    interface: str = DEFAULT_INTERFACE
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network = DEFAULT_SUBNET
    mtu: int = DEFAULT_MTU


def parse_endpoint(text: str) -> ServerAddress:
    stripped = text.strip()
    if ":" not in stripped.rsplit("]", 1)[-1]:
        stripped = f"{stripped}:{DEFAULT_PORT}"
    return parse_server_address(stripped)


def parse_subnet(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        subnet = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise AddressError(f"not a network like 198.51.100.0/24 ({exc})") from None
    if subnet.num_addresses < 4:
        raise AddressError("the tunnel subnet needs room for the server and terminals")
    return subnet


def add_vpn_run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--vpn-endpoint", metavar="HOST[:PORT]",
                     help="run the WireGuard endpoint for scenario A terminals: listen on UDP "
                          f"PORT (default {DEFAULT_PORT}) and tell terminals HOST:PORT")
    run.add_argument("--vpn-interface", default=DEFAULT_INTERFACE, metavar="NAME",
                     help=f"the endpoint's interface (default {DEFAULT_INTERFACE}; unique per "
                          "machine: wireguard-go's socket path is global)")
    run.add_argument("--vpn-subnet", default=str(DEFAULT_SUBNET), metavar="CIDR",
                     help=f"tunnel addresses (default {DEFAULT_SUBNET}; the server is the first)")
    run.add_argument("--vpn-mtu", type=int, default=DEFAULT_MTU, metavar="BYTES",
                     help=f"tunnel MTU told to terminals (default {DEFAULT_MTU})")


def vpn_settings(args: argparse.Namespace) -> VpnSettings | None:
    """From the run options; AddressError naming the option."""
    if not args.vpn_endpoint:
        return None
    from batm_common.wireguard import WgError, check_ifname

    try:
        endpoint = parse_endpoint(args.vpn_endpoint)
    except AddressError as exc:
        raise AddressError(f"--vpn-endpoint: {exc}") from None
    try:
        interface = check_ifname(args.vpn_interface)
    except WgError as exc:
        raise AddressError(f"--vpn-interface: {exc}") from None
    try:
        subnet = parse_subnet(args.vpn_subnet)
    except AddressError as exc:
        raise AddressError(f"--vpn-subnet: {exc}") from None
    if not 1280 <= args.vpn_mtu <= 9000:
        raise AddressError(f"--vpn-mtu: must be 1280-9000, not {args.vpn_mtu}")
    return VpnSettings(endpoint, interface, subnet, args.vpn_mtu)
