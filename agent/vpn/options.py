"""The VPN's tunables (scenario A): their defaults and limits, and `batm-agent run`'s options.

Kept free of WireGuard libraries: `batm-agent` builds its whole parser for every command, and
`status` must not pay for loading what only `run` uses.
"""

from __future__ import annotations

import argparse

from batm_common.digits import decimal

DEFAULT_INTERFACE = "wg-batm"  # unique on the machine
DEFAULT_MTU = 1420
MIN_MTU, MAX_MTU = 1280, 9000
HEALTH_WINDOW = 180.0  # seconds without traffic through the tunnel before it counts as down
CHECK_INTERVAL = 5.0  # seconds between health checks


def _ifname(text: str) -> str:
    # Imported here, not above: batm_common.wireguard loads wireguard_tools, which only `run`
    # needs (argparse calls this only when the command is `run`).
    from batm_common.wireguard import WgError, check_ifname

    try:
        return check_ifname(text)
    except WgError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _mtu(text: str) -> int:
    value = decimal(text)
    if value is None or not MIN_MTU <= value <= MAX_MTU:
        raise argparse.ArgumentTypeError(f"must be an integer {MIN_MTU}-{MAX_MTU}, not {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.1 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"must be 0.1-86400 seconds, not {text}")
    return value


def add_run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--vpn-interface", type=_ifname, default=DEFAULT_INTERFACE, metavar="NAME",
                     help=f"WireGuard interface for scenario A (default {DEFAULT_INTERFACE})")
    run.add_argument("--vpn-mtu", type=_mtu, default=DEFAULT_MTU, metavar="BYTES",
                     help=f"tunnel MTU unless the server says otherwise (default {DEFAULT_MTU})")
    run.add_argument("--vpn-health-window", type=_seconds, default=HEALTH_WINDOW, metavar="S",
                     help="the tunnel is down when nothing came through it for S seconds "
                          f"(default {HEALTH_WINDOW:g}; the handshake age limit stays >= 180)")
    run.add_argument("--vpn-check-interval", type=_seconds, default=CHECK_INTERVAL, metavar="S",
                     help=f"how often the tunnel's health is checked (default {CHECK_INTERVAL:g})")


def daemon_options(args: argparse.Namespace) -> dict:
    return {
        "vpn_interface": getattr(args, "vpn_interface", None) or DEFAULT_INTERFACE,
        "vpn_mtu": getattr(args, "vpn_mtu", None) or DEFAULT_MTU,
        "vpn_health_window": getattr(args, "vpn_health_window", None) or HEALTH_WINDOW,
        "vpn_check_interval": getattr(args, "vpn_check_interval", None) or CHECK_INTERVAL,
    }
