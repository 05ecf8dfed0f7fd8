"""`batm-server firmware add|list|policy`: the operator's side of the firmware catalog.

These work on the data dir directly (catalog files + the SQLite database in WAL mode), whether or
not a server runs: the gate reads the catalog and the policy at every hello, so a bundle added
or a policy changed takes effect with the next hello.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from batm_common.digits import decimal
from server.cli.tables import print_json, render
from server.errors import ServiceError, bad_request


def _version(text: str) -> int:
    if not (decimal(text, max_digits=8) and len(text) == 8 and 1 <= int(text[4:6]) <= 12):
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYYMMDD version")
    return int(text)


def add_firmware_commands(firmware, leaf) -> None:
    leaf(firmware, "add", "add a signed bundle to the catalog").add_argument("bundle")
    listing = leaf(firmware, "list", "list the catalog's bundles and the upgrade policy")
    listing.add_argument("--json", action="store_true")
    policy = leaf(firmware, "policy", "show or set the minimum version a terminal needs to pair")
    policy.add_argument("--min-pair-version", type=_version, metavar="YYYYMMDD")
    policy.add_argument("--json", action="store_true")


def firmware_command(args: argparse.Namespace, data_dir: Path) -> None:
    """Carry out one `firmware` command; ServiceError saying why it could not."""
    # Imported here: every other batm-server command starts faster without SQLAlchemy.
    from server.db.engine import close_database, open_database
    from server.firmware.catalog import Catalog, CatalogError

    if args.action == "add" and not Path(args.bundle).is_file():
        raise bad_request(f"{args.bundle}: no such bundle file")
    if not data_dir.is_dir():
        raise ServiceError(404, "no_data", f"the data dir {data_dir} does not exist (start the "
                                           "server once, or pass --data-dir)")
    sessions = open_database(data_dir)
    try:
        catalog = Catalog(sessions, data_dir)
        if args.action == "add":
            bundle = catalog.add(args.bundle)
            ranges = ", ".join(str(r) for r in bundle.install_from)
            print(f"added bundle #{bundle.id}: version {bundle.version} for "
                  f"{', '.join(bundle.hardware)}, installable from {ranges} ({bundle.size} bytes)")
        elif args.action == "list":
            bundles = [b.to_json() for b in catalog.bundles()]
            minimum = catalog.min_pair_version()
            if args.json:
                print_json({"min_pair_version": minimum, "bundles": bundles})
            else:
                print(f"minimum version to pair: {minimum}")
                print(render(["ID", "VERSION", "HARDWARE", "INSTALL FROM", "SIZE", "FILE"], [
                    [b["id"], b["version"], ",".join(b["hardware"]), ",".join(b["install_from"]),
                     b["size"], b["file"]] for b in bundles]) if bundles else "no bundles")
        else:
            if args.min_pair_version is not None:
                catalog.set_min_pair_version(args.min_pair_version)
            minimum = catalog.min_pair_version()
            print(json.dumps({"min_pair_version": minimum}) if args.json
                  else f"minimum version to pair: {minimum}")
    except CatalogError as exc:
        raise ServiceError(409, "catalog", str(exc)) from exc
    finally:
        close_database(sessions)
