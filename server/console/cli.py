"""`batm-server user add|list|passwd|disable|locations` and `batm-server token create`.

They work on the data dir's database directly, whether or not a server runs: the console reads
users and tokens at every request, so a change applies at once. Passwords come on standard
input only (never in argv, where `ps` and shell histories would show them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.cli.tables import print_json, render
from server.errors import ServiceError, bad_request

ROLES = ("admin", "operator", "viewer")


def _locations_options(parser: argparse.ArgumentParser, required: bool) -> None:
    where = parser.add_mutually_exclusive_group(required=required)
    where.add_argument("--locations", metavar="L1,L2", help="the locations the user works on")
    where.add_argument("--all-locations", action="store_true",
                       help="every location, and terminals without one")


def add_user_commands(commands, leaf) -> None:
    user = commands.add_parser("user", help="the operator console's users").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add = leaf(user, "add", "make a console user (admins and operators get a TOTP secret)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    _locations_options(add, required=True)
    add.add_argument("--password-stdin", action="store_true", required=True,
                     help="read the password from standard input (one line)")
    add.add_argument("--json", action="store_true", help='print {"name", "totp_uri"}')
    listing = leaf(user, "list", "list console users")
    listing.add_argument("--json", action="store_true")
    passwd = leaf(user, "passwd", "set a user's password (their sessions end)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", required=True,
                        help="read the password from standard input (one line)")
    leaf(user, "disable", "disable a user (their sessions and tokens end)").add_argument("name")
    locations = leaf(user, "locations", "set the locations a user works on")
    locations.add_argument("name")
    _locations_options(locations, required=True)
    locations.add_argument("--json", action="store_true")

    token = commands.add_parser("token", help="API tokens").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    create = leaf(token, "create", "make an API token acting as USER (printed once)")
    create.add_argument("user")
    create.add_argument("--json", action="store_true", help='print {"token"}')


def _password() -> str:
    line = sys.stdin.readline()
    if not line:
        raise bad_request("no password on standard input (--password-stdin reads one line)")
    return line.rstrip("\r\n")


def _locations(args: argparse.Namespace) -> list[str] | None:
    from server.console.permissions import parse_locations

    return None if args.all_locations else parse_locations(args.locations)


def user_command(args: argparse.Namespace, data_dir: Path) -> None:
    """Carry out one `user` or `token` command; ServiceError saying why it could not."""
    # Imported here: every other batm-server command starts faster without SQLAlchemy/argon2.
    from server.console.permissions import location_list
    from server.console.tokens import Tokens
    from server.console.users import Users
    from server.db.engine import close_database, open_database

    if not data_dir.is_dir():
        raise ServiceError(404, "no_data", f"the data dir {data_dir} does not exist (start the "
                                           "server once, or pass --data-dir)")
    sessions = open_database(data_dir)
    try:
        users = Users(sessions)
        key = (args.command, args.action)
        if key == ("token", "create"):
            token = Tokens(sessions).create(args.user)
            print_json({"token": token}) if args.json else print(token)
        elif args.action == "add":
            made = users.add(args.name, args.role, _locations(args), _password())
            if args.json:
                print_json(made)
            else:
                print(f"added {args.role} {args.name}")
                if made["totp_uri"]:
                    print(f"TOTP (enrol it in an authenticator app now): {made['totp_uri']}")
        elif args.action == "list":
            listed = users.list()
            if args.json:
                print_json(listed)
            else:
                print(render(["NAME", "ROLE", "LOCATIONS", "TOTP", "DISABLED"], [
                    [u["name"], u["role"], location_list(u["locations"]),
                     "yes" if u["totp"] else "no", "yes" if u["disabled"] else "no"]
                    for u in listed]) if listed else "no console users")
        elif args.action == "passwd":
            users.passwd(args.name, _password())
            print(f"password of {args.name} changed; their sessions ended")
        elif args.action == "disable":
            users.disable(args.name)
            print(f"disabled {args.name}; their sessions and tokens ended")
        else:
            view = users.set_locations(args.name, _locations(args))
            print_json(view) if args.json else print(
                f"{args.name} works on {location_list(view['locations'])}")
    finally:
        close_database(sessions)
