"""What `batm-server run` is told: where to listen, what to advertise, the broker's, the VPN's and
the console's addresses, how many terminals to upgrade at once; parsed and checked before anything
starts.

Light on purpose (no FastAPI, no SQLAlchemy, no WireGuard): the CLI builds its `run` options
from here, and `--help` must not wait for the server's heavy dependencies.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from batm_common.digits import decimal
from batm_common.hostaddr import AddressError, ServerAddress, parse_server_address, validate_host
from server.master.options import MasterOptions, add_master_run_options, master_options
from server.vpn.settings import VpnSettings, add_vpn_run_options, vpn_settings

DEFAULT_LISTEN = "0.0.0.0:8443"
DEFAULT_MQTT_PORT = 8883
DEFAULT_CONSOLE_PORT = 8444  # the operator console (pages and its HTTPS API)
DEFAULT_MAX_CONCURRENT_UPGRADES = 4  # terminals the gate upgrades at once


def parse_listen(text: str) -> ServerAddress:
    """HOST:PORT to listen on; port 0 (any free port) is allowed, unlike for a server address."""
    stripped = text.strip()
    if stripped.endswith(":0") and not stripped.endswith("::0"):
        address = parse_server_address(stripped[:-2] + ":1")
        return ServerAddress(address.host, 0)
    return parse_server_address(stripped)


def parse_advertise(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise AddressError("needs at least one address or host name")
    return [validate_host(name) for name in names]


def positive_int(text: str) -> int:
    value = decimal(text)
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ≥ 1")
    return value


def non_negative_int(text: str) -> int:
    """A whole number ≥ 0 (how many of something, none allowed)."""
    value = decimal(text)
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ≥ 0")
    return value


@dataclass(frozen=True)
class ServerSettings:
    data_dir: Path
    listen: ServerAddress
    advertise: list[str] | None = None  # None: every address of the listen host + loopback
    mqtt_listen: ServerAddress | None = None  # None: the gate's host, port 8883
    max_concurrent_upgrades: int = DEFAULT_MAX_CONCURRENT_UPGRADES
    vpn: VpnSettings | None = None  # scenario A: the WireGuard endpoint (vpn/)
    console_listen: ServerAddress | None = None  # None: the gate's host, port 8444
    console_cert: Path | None = None  # None: the server CA's leaf (the gate's certificate)
    console_key: Path | None = None
    database: str | None = None  # a URL; None: $BATM_DATABASE_URL or data_dir/batm.db
    master: MasterOptions = field(default_factory=MasterOptions)  # --replica, --history-days

    @property
    def console_address(self) -> ServerAddress:
        if self.console_listen is not None:
            return self.console_listen
        return ServerAddress(self.listen.host, 0 if self._local() else DEFAULT_CONSOLE_PORT)

    def _local(self) -> bool:
        return self.listen.port == 0 or self.listen.host.startswith("127.")

    @property
    def broker_listen(self) -> ServerAddress:
        if self.mqtt_listen is not None:
            return self.mqtt_listen
        # A gate on a free port or on loopback (tests, development) gets a broker on a free
        # port: terminals learn the broker's address from the gate, at every check-in. The
        # console likewise (server.json says where it is).
        return ServerAddress(self.listen.host, 0 if self._local() else DEFAULT_MQTT_PORT)


def add_run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                     help=f"where the gate listens (default {DEFAULT_LISTEN}; port 0 picks a "
                          "free one)")
    run.add_argument("--mqtt-listen", metavar="HOST:PORT",
                     help="where the broker's TLS listener for terminals listens "
                          f"(default: the gate's host, port {DEFAULT_MQTT_PORT})")
    run.add_argument("--advertise", metavar="ADDR,...",
                     help="addresses and names for the server certificate "
                          "(default: every address of the listen host, 127.0.0.1, localhost)")
    run.add_argument("--max-concurrent-upgrades", type=positive_int,
                     default=DEFAULT_MAX_CONCURRENT_UPGRADES, metavar="N",
                     help="upgrade at most N terminals at once "
                          f"(default {DEFAULT_MAX_CONCURRENT_UPGRADES})")
    run.add_argument("--console-listen", metavar="HOST:PORT",
                     help="where the operator console (HTTPS pages and API) listens "
                          f"(default: the gate's host, port {DEFAULT_CONSOLE_PORT})")
    run.add_argument("--console-cert", type=Path, metavar="PEM",
                     help="the console's certificate chain, one your operators' browsers trust "
                          "(default: the server CA's certificate, as the gate's)")
    run.add_argument("--console-key", type=Path, metavar="PEM",
                     help="the private key of --console-cert")
    add_vpn_run_options(run)
    add_master_run_options(run)


def settings_from_args(args: argparse.Namespace, data_dir: Path) -> ServerSettings:
    """The `run` options as settings; AddressError naming the option that is wrong."""
    try:
        listen = parse_listen(args.listen)
    except AddressError as exc:
        raise AddressError(f"--listen: {exc}") from None
    try:
        advertise = parse_advertise(args.advertise) if args.advertise is not None else None
    except AddressError as exc:
        raise AddressError(f"--advertise: {exc}") from None
    try:
        mqtt = parse_listen(args.mqtt_listen) if args.mqtt_listen else None
    except AddressError as exc:
        raise AddressError(f"--mqtt-listen: {exc}") from None
    try:
        console = parse_listen(args.console_listen) if args.console_listen else None
    except AddressError as exc:
        raise AddressError(f"--console-listen: {exc}") from None
    if (args.console_cert is None) != (args.console_key is None):
        raise AddressError("--console-cert and --console-key go together")
    for option, path in (("--console-cert", args.console_cert),
                         ("--console-key", args.console_key)):
        if path is not None and not path.is_file():
            raise AddressError(f"{option}: {path} is not a file")
    return ServerSettings(data_dir, listen, advertise, mqtt, args.max_concurrent_upgrades,
                          vpn=vpn_settings(args), console_listen=console,
                          console_cert=args.console_cert, console_key=args.console_key,
                          database=getattr(args, "database", None),
                          master=master_options(args))
