"""`batm-server`: run the reference server and administer terminals and pairing requests.

Exit status: 0 done, 1 refused or failed (one line on stderr saying why), 2 usage error.

Start-up imports only what the command needs: the parser is built from light modules, the admin
client (httpx) is loaded for the commands that reach the server, the database (SQLAlchemy) for
those that work on it offline, FastAPI and uvicorn only for `run`. Every command needs the
server's extra; on a terminal-only install each one says which to install, `--help` included.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from batm_common.hostaddr import AddressError
from server.cli.tables import pairing_table, print_json, terminal_table, vpn_summary
from server.console.cli import add_user_commands, user_command
from server.db.errors import DatabaseError
from server.errors import ServiceError
from server.firmware.cli import add_firmware_commands, firmware_command
from server.master.cli import MASTER_ACTIONS, master_command
from server.paths import DATABASE_ENV, default_data_dir
from server.settings import add_run_options, settings_from_args

if TYPE_CHECKING:
    from server.cli.admin_client import AdminBackend

PROG = "batm-server"
SERVER_EXTRA = "batm-terminal[server]"
# The distributions of that extra the server imports (pyproject.toml, [server]).
SERVER_PACKAGES = ("fastapi", "sqlalchemy", "alembic", "uvicorn", "argon2", "pyotp")


def missing_server_packages() -> list[str]:
    """The server's packages this Python cannot import (found without importing them)."""
    missing = []
    for name in SERVER_PACKAGES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def _data_dir_option(parser: argparse.ArgumentParser, top_level: bool) -> None:
    # Accepted before and after the subcommand; SUPPRESS keeps a leaf's absent option from
    # overwriting a value given at the top.
    parser.add_argument(
        "--data-dir", type=Path,
        default=None if top_level else argparse.SUPPRESS,
        help="the server's state directory (default: $BATM_DATA_DIR or /var/lib/batm-server)",
    )
    parser.add_argument(
        "--database", metavar="URL",
        default=None if top_level else argparse.SUPPRESS,
        help="the database: sqlite:///PATH or postgresql+psycopg://USER[:PASSWORD]@HOST/NAME "
             f"(default: ${DATABASE_ENV}, else DATA_DIR/batm.db; prefer the variable for a URL "
             "with a password: a command line is visible to every user)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="BATM reference server")
    _data_dir_option(parser, top_level=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def leaf(group, name: str, help_text: str) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help_text, description=help_text)
        _data_dir_option(sub, top_level=False)
        return sub

    add_run_options(leaf(commands, "run", "run the gate (HTTPS) and the admin API (Unix socket)"))

    terminal = commands.add_parser("terminal", help="manage terminals").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    create = leaf(terminal, "create", "register a terminal so that it may pair")
    create.add_argument("serial")
    create.add_argument("--scenario", required=True, choices=["A", "B"],
                        help="A: through the VPN, B: directly")
    create.add_argument("--location", default=None)
    listing = leaf(terminal, "list", "list terminals with the status monitor's fields: version, "
                                     "last update, last sync, last sync error, highlight")
    listing.add_argument("--json", action="store_true", help="print the admin API's JSON")
    listing.add_argument("--location", help="only this location's terminals")
    listing.add_argument("--updated-within", metavar="PERIOD",
                         help="last firmware update within 30m, 6h, 2d, …")
    listing.add_argument("--hide-synced", action="store_true",
                         help="do not show successfully synced terminals (sync errors only)")
    listing.add_argument("--state", help="only terminals in this pairing state")
    listing.add_argument("--highlight", choices=["red", "yellow"],
                         help="red: the last sync failed; yellow: needs a firmware update")
    enroll = leaf(terminal, "enroll", "pair a fleet by identity keys from a factory list "
                                      "(JSON lines: serial, identity_key, mqtt?)")
    enroll.add_argument("file", type=Path)
    enroll.add_argument("--scenario", default="B", choices=["A", "B"],
                        help="for terminals not yet created (default B)")
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

    db = commands.add_parser("db", help="the database's schema").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    leaf(db, "upgrade", "migrate the database to this version's schema (every start does too)")
    leaf(db, "current", "the database's schema revision and this version's")

    firmware = commands.add_parser("firmware", help="firmware catalog").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add_firmware_commands(firmware, leaf)
    add_user_commands(commands, leaf)
    return parser


def _admin(args: argparse.Namespace, backend: AdminBackend, data_dir: Path) -> None:
    key = (args.command, args.action)
    if key == ("terminal", "create"):
        terminal = backend.create_terminal(args.serial, args.scenario, args.location)
        print(f"created terminal {terminal['serial']} (scenario {terminal['scenario']})")
    elif key == ("terminal", "list"):
        terminals = backend.list_terminals({
            "location": args.location, "updated_within": args.updated_within,
            "hide_synced": "true" if args.hide_synced else None, "state": args.state,
            "highlight": args.highlight})
        if args.json:
            print_json(terminals)
        else:
            print(terminal_table(terminals))
    elif key == ("terminal", "enroll"):
        from server.pairing.enrollment import read_enrollment_file

        count = backend.enroll(args.scenario, read_enrollment_file(args.file))
        print(f"enrolled {count} terminal(s): paired with their listed keys")
    elif key == ("terminal", "unpair"):
        backend.unpair(args.serial)
        print(f"unpaired terminal {args.serial}")
    elif key == ("terminal", "vpn"):
        view = backend.generate_vpn(args.serial)
        if args.json:
            print_json(view)
        else:
            print(vpn_summary(view))
    elif key == ("terminal", "delete"):
        backend.delete_terminal(args.serial)
        print(f"deleted terminal {args.serial}")
    elif args.command == "terminal" and args.action in MASTER_ACTIONS:
        master_command(args, backend, data_dir)
    elif key == ("broker", "restart"):
        answer = backend.broker_restart()
        print(f"broker restarted (pid {answer['pid']})")
    elif key == ("broker", "status"):
        print_json(backend.broker())
    elif key == ("pairing", "list"):
        requests = backend.list_pairing_requests()
        if args.json:
            print_json(requests)
        else:
            print(pairing_table(requests))
    elif key == ("pairing", "approve"):
        terminal = backend.approve(args.serial, args.code)
        print(f"approved: terminal {terminal['serial']} is paired "
              f"(identity {terminal['identity_fingerprint']})")
    else:  # pragma: no cover - argparse only lets known commands through
        raise AssertionError(key)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser, data_dir: Path) -> int:
    try:
        settings = settings_from_args(args, data_dir)
    except AddressError as exc:
        parser.error(str(exc))
    from server.app import run_server  # FastAPI and uvicorn: only the running server needs them

    return run_server(settings)


def _database(args: argparse.Namespace, data_dir: Path) -> int:
    from server.db.cli import database_command  # SQLAlchemy and Alembic: only here

    try:
        print(database_command(args.action, data_dir))
    except DatabaseError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    missing = missing_server_packages()
    if missing:
        print(f"{PROG}: error: the server is not installed here ({', '.join(missing)} missing); "
              f"install it with: pip install '{SERVER_EXTRA}'", file=sys.stderr)
        return 1
    parser = build_parser()
    args = parser.parse_args(argv)
    data_dir: Path = args.data_dir or default_data_dir()
    if args.database:  # every command below opens the database through this variable
        os.environ[DATABASE_ENV] = args.database
    if args.command == "run":
        return _run(args, parser, data_dir)
    if args.command == "db":
        return _database(args, data_dir)
    try:
        if args.command == "firmware":
            firmware_command(args, data_dir)
            return 0
        if args.command in ("user", "token"):
            user_command(args, data_dir)
            return 0
        from server.cli.admin_client import open_backend

        backend = open_backend(data_dir, may_create=(args.command, args.action) == (
            "terminal", "create"))
        try:
            _admin(args, backend, data_dir)
        finally:
            backend.close()
    except ServiceError as exc:
        print(f"{PROG}: error: {exc.message}", file=sys.stderr)
        return 1
    except DatabaseError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
