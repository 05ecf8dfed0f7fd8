"""`batm-server`: run the reference server and administer terminals and pairing requests.

Exit status: 0 done, 1 refused or failed (one line on stderr saying why), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from batm_common.hostaddr import AddressError
from server.admin_client import AdminBackend, open_backend
from server.errors import ServiceError
from server.firmware_cli import (
    DEFAULT_MAX_CONCURRENT,
    add_firmware_commands,
    firmware_command,
    positive_int,
)
from server.master_cli import MASTER_ACTIONS, master_command
from server.paths import default_data_dir
from server.tables import pairing_table, terminal_table
from server.vpn_wire import add_vpn_run_options, describe, vpn_settings

PROG = "batm-server"


def _data_dir_option(parser: argparse.ArgumentParser, top_level: bool) -> None:
    # Accepted before and after the subcommand; SUPPRESS keeps a leaf's absent option from
    # overwriting a value given at the top.
    parser.add_argument(
        "--data-dir", type=Path,
        default=None if top_level else argparse.SUPPRESS,
        help="the server's state directory (default: $BATM_DATA_DIR or /var/lib/batm-server)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="BATM reference server")
    _data_dir_option(parser, top_level=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def leaf(group, name: str, help_text: str) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help_text, description=help_text)
        _data_dir_option(sub, top_level=False)
        return sub

    run = leaf(commands, "run", "run the gate (HTTPS) and the admin API (Unix socket)")
    run.add_argument("--listen", default="0.0.0.0:8443", metavar="HOST:PORT",
                     help="where the gate listens (default 0.0.0.0:8443; port 0 picks a free one)")
    run.add_argument("--mqtt-listen", metavar="HOST:PORT",
                     help="where the broker's TLS listener for terminals listens "
                          "(default: the gate's host, port 8883)")
    run.add_argument("--advertise", metavar="ADDR,...",
                     help="addresses and names for the server certificate "
                          "(default: every address of the listen host, 127.0.0.1, localhost)")
    run.add_argument("--max-concurrent-upgrades", type=positive_int, default=DEFAULT_MAX_CONCURRENT,
                     metavar="N", help="upgrade at most N terminals at once "
                                       f"(default {DEFAULT_MAX_CONCURRENT})")

    add_vpn_run_options(run)

    terminal = commands.add_parser("terminal", help="manage terminals").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    create = leaf(terminal, "create", "register a terminal so that it may pair")
    create.add_argument("serial")
    create.add_argument("--scenario", required=True, choices=["A", "B"],
                        help="A: through the VPN, B: directly")
    create.add_argument("--location", default=None)
    listing = leaf(terminal, "list", "list terminals")
    listing.add_argument("--json", action="store_true", help="print the admin API's JSON")
    leaf(terminal, "unpair", "unpair a terminal (it drops its credentials)").add_argument("serial")
    leaf(terminal, "delete", "forget a terminal").add_argument("serial")
    vpn = leaf(terminal, "vpn", "generate a terminal's VPN configuration (scenario A)")
    vpn.add_argument("serial")
    vpn.add_argument("--json", action="store_true", help="print the admin API's JSON")
    status = leaf(terminal, "status", "a terminal's health: version, last update, last sync, "
                                      "last sync error")
    status.add_argument("serial")
    status.add_argument("--json", action="store_true", help="print the admin API's JSON")
    status.add_argument("--history", type=int, nargs="?", const=20, default=0, metavar="N",
                        help="also show the last N status changes (default 20)")
    events = leaf(terminal, "events", "events the terminal recorded")
    events.add_argument("serial")
    events.add_argument("--json", action="store_true", help="print the admin API's JSON")
    events.add_argument("--count", action="store_true", help="print only how many there are")
    events.add_argument("--limit", type=int, default=20, help="how many to list (default 20)")
    logs = leaf(terminal, "logs", "retrieve the terminal's logs for a period")
    logs.add_argument("serial")
    logs.add_argument("--since", required=True, metavar="ISO", help="start, e.g. 2024-05-01T10:00")
    logs.add_argument("--until", required=True, metavar="ISO", help="end (ISO 8601)")
    logs.add_argument("--max-size", required=True, type=int, metavar="BYTES",
                      help="largest archive the terminal may upload")
    logs.add_argument("--wait", action="store_true", help="wait for the archive and print it")
    logs.add_argument("--timeout", type=float, default=60.0, help="how long --wait waits")
    reset = leaf(terminal, "reset-db", "make the terminal delete and recreate its local database")
    reset.add_argument("serial")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    leaf(terminal, "reboot", "reboot the terminal").add_argument("serial")
    cmd = leaf(terminal, "command", "show a remote command and its result")
    cmd.add_argument("serial")
    cmd.add_argument("command_id")
    cmd.add_argument("--wait", type=float, default=0, metavar="S", help="wait up to S seconds")
    archives = leaf(terminal, "archives", "list the log archives a terminal uploaded")
    archives.add_argument("serial")
    archives.add_argument("--json", action="store_true", help="print the admin API's JSON")

    broker = commands.add_parser("broker", help="the master service's MQTT broker").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    leaf(broker, "restart", "restart Mosquitto (clients reconnect; nothing is lost)")
    leaf(broker, "status", "the broker process")

    pairing = commands.add_parser("pairing", help="pairing requests").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    plist = leaf(pairing, "list", "list open pairing requests")
    plist.add_argument("--json", action="store_true", help="print the admin API's JSON")
    approve = leaf(pairing, "approve", "approve a terminal's pairing request")
    approve.add_argument("serial")
    approve.add_argument("--code", required=True,
                         help="the code the terminal shows, like ABCD-1234")

    firmware = commands.add_parser("firmware", help="firmware catalog").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    leaf(firmware, "add", "add a signed bundle to the catalog").add_argument("bundle")
    add_firmware_commands(firmware, leaf)
    return parser


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2))


def _admin(args: argparse.Namespace, backend: AdminBackend) -> None:
    key = (args.command, args.action)
    if key == ("terminal", "create"):
        terminal = backend.create_terminal(args.serial, args.scenario, args.location)
        print(f"created terminal {terminal['serial']} (scenario {terminal['scenario']})")
    elif key == ("terminal", "list"):
        terminals = backend.list_terminals()
        if args.json:
            _print_json(terminals)
        else:
            print(terminal_table(terminals))
    elif key == ("terminal", "unpair"):
        backend.unpair(args.serial)
        print(f"unpaired terminal {args.serial}")
    elif key == ("terminal", "vpn"):
        view = backend.generate_vpn(args.serial)
        if args.json:
            _print_json(view)
        else:
            print(describe(view))
    elif key == ("terminal", "delete"):
        backend.delete_terminal(args.serial)
        print(f"deleted terminal {args.serial}")
    elif args.command == "terminal" and args.action in MASTER_ACTIONS:
        master_command(args, backend, Path(args.data_dir or default_data_dir()))
    elif key == ("broker", "restart"):
        answer = backend.broker_restart()
        print(f"broker restarted (pid {answer['pid']})")
    elif key == ("broker", "status"):
        _print_json(backend.broker())
    elif key == ("pairing", "list"):
        requests = backend.list_pairing_requests()
        if args.json:
            _print_json(requests)
        else:
            print(pairing_table(requests))
    elif key == ("pairing", "approve"):
        terminal = backend.approve(args.serial, args.code)
        print(f"approved: terminal {terminal['serial']} is paired "
              f"(identity {terminal['identity_fingerprint']})")
    else:  # pragma: no cover - argparse only lets known commands through
        raise AssertionError(key)


def _not_implemented(what: str) -> int:
    print(f"{PROG}: error: {what} is not implemented yet", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    data_dir: Path = args.data_dir or default_data_dir()

    if args.command == "run":
        from server.app import ServerSettings, parse_advertise, parse_listen, run_server

        try:
            listen = parse_listen(args.listen)
        except AddressError as exc:
            parser.error(f"--listen: {exc}")
        try:
            advertise = parse_advertise(args.advertise) if args.advertise is not None else None
        except AddressError as exc:
            parser.error(f"--advertise: {exc}")
        try:
            mqtt = parse_listen(args.mqtt_listen) if args.mqtt_listen else None
        except AddressError as exc:
            parser.error(f"--mqtt-listen: {exc}")
        try:
            vpn = vpn_settings(args)
        except AddressError as exc:
            parser.error(str(exc))
        return run_server(ServerSettings(data_dir, listen, advertise, mqtt,
                                         args.max_concurrent_upgrades,
                                         vpn=vpn))
    if args.command == "firmware":
        return firmware_command(args, data_dir)

    try:
        backend = open_backend(data_dir, may_create=(args.command, args.action) == (
            "terminal", "create"))
        try:
            _admin(args, backend)
        finally:
            backend.close()
    except ServiceError as exc:
        print(f"{PROG}: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
