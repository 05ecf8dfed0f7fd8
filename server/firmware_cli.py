"""`batm-server firmware add|list|policy`: the operator's side of the firmware catalog.

These work on the data dir directly (catalog files + the SQLite database in WAL mode), whether or
not a server runs: the gate reads the catalog and the policy at every hello, so a bundle added
or a policy changed takes effect with the next hello.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PROG = "batm-server"
DEFAULT_MAX_CONCURRENT = 4  # terminals the gate upgrades at once (`run --max-concurrent-upgrades`)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ≥ 1")
    return int(text)


def _version(text: str) -> int:
    if not (text.isdigit() and len(text) == 8 and 1 <= int(text[4:6]) <= 12):
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYYMMDD version")
    return int(text)


def add_firmware_commands(firmware, leaf) -> None:
    listing = leaf(firmware, "list", "list the catalog's bundles and the upgrade policy")
    listing.add_argument("--json", action="store_true")
    policy = leaf(firmware, "policy", "show or set the minimum version a terminal needs to pair")
    policy.add_argument("--min-pair-version", type=_version, metavar="YYYYMMDD")
    policy.add_argument("--json", action="store_true")


def firmware_command(args: argparse.Namespace, data_dir: Path) -> int:
    # Imported here: every other batm-server command starts faster without SQLAlchemy.
    from server.db import close_database, open_database
    from server.firmware_catalog import Catalog, CatalogError
    from server.tables import render

    if args.action == "add" and not Path(args.bundle).is_file():
        print(f"{PROG}: error: {args.bundle}: no such bundle file", file=sys.stderr)
        return 1
    if not data_dir.is_dir():
        print(f"{PROG}: error: the data dir {data_dir} does not exist (start the server once, "
              "or pass --data-dir)", file=sys.stderr)
        return 1
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
                print(json.dumps({"min_pair_version": minimum, "bundles": bundles}, indent=2))
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
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        close_database(sessions)
    return 0
