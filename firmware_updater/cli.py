"""`batm-firmware`: build, sign, inspect and install firmware bundles; try, commit, roll back.

Errors are one line on stderr and exit 1; usage errors exit 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from batm_common.digits import decimal
from firmware_updater import bundle as bundle_mod
from firmware_updater.errors import FirmwareError
from firmware_updater.journal import COMMITTED, FAILED, REBOOTING, ROLLED_BACK, TRYING
from firmware_updater.manifest import HARDWARE_PATTERN, VersionRange, valid_version

DEFAULT_SLOTS_DIR = "/var/lib/batm-slots"
PROG = "batm-firmware"


def _version(text: str) -> int:
    if (value := decimal(text)) is None or not valid_version(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYYMMDD version")
    return int(text)


def _hardware(text: str) -> str:
    if not HARDWARE_PATTERN.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a hardware name (e.g. rpi4)")
    return text


def _range(text: str) -> VersionRange:
    try:
        return VersionRange.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20}
    factor = units.get(text[-1:].lower(), 1)
    digits = text[:-1] if factor > 1 else text
    if (value := decimal(digits)) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 1m, 64k, 4096)")
    return value * factor


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def slots(p: argparse.ArgumentParser) -> None:
        p.add_argument("--slots-dir", default=os.environ.get("BATM_SLOTS_DIR") or DEFAULT_SLOTS_DIR,
                       help=f"the A/B slots (env BATM_SLOTS_DIR; default {DEFAULT_SLOTS_DIR})")

    def trusted(p: argparse.ArgumentParser, required: bool) -> None:
        env = os.environ.get("BATM_FW_TRUSTED_KEYS")
        p.add_argument("--trusted-keys", default=env, required=required and not env,
                       metavar="DIR", help="directory of trusted *.pub keys "
                                           "(env BATM_FW_TRUSTED_KEYS)")

    p = commands.add_parser("keygen", help="make an Ed25519 signing key (KEY and KEY.pub)")
    p.add_argument("key", type=Path)

    p = commands.add_parser("build", help="build an unsigned bundle from a directory")
    p.add_argument("--version", type=_version, required=True)
    p.add_argument("--hardware", type=_hardware, action="append", required=True)
    p.add_argument("--install-from", type=_range, action="append", metavar="RANGE",
                   help="running versions that may install it directly: MIN-MAX, MIN-, -MAX "
                        "or V (repeatable; default: any older version)")
    p.add_argument("--chunk-size", type=_size, help="verification chunk (default: automatic)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("src_dir", type=Path)

    p = commands.add_parser("sign", help="add a signature to a bundle (in place)")
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("bundle", type=Path)

    p = commands.add_parser("inspect", help="show a bundle's manifest and signatures")
    p.add_argument("bundle", type=Path)
    p.add_argument("--json", action="store_true")
    p.add_argument("--verify", action="store_true", help="also hash the payload")
    trusted(p, required=False)

    p = commands.add_parser("install", help="install a bundle (file or http(s) URL) and try it")
    p.add_argument("source", metavar="BUNDLE_OR_URL")
    p.add_argument("--hardware", type=_hardware, help="default: the running slot's manifest")
    slots(p)
    trusted(p, required=True)

    p = commands.add_parser("resume", help="at start-up: finish or settle an interrupted update")
    p.add_argument("--no-boot", action="store_true",
                   help="do not perform the directory backend's boot step")
    p.add_argument("--hardware", type=_hardware)
    slots(p)
    trusted(p, required=False)

    p = commands.add_parser("status", help="slots, active, tried, committed, install state")
    p.add_argument("--json", action="store_true")
    slots(p)

    for name, text in (("commit", "keep the version being tried (it reached the gate)"),
                       ("rollback", "give up the version being tried, or cancel an install")):
        slots(commands.add_parser(name, help=text))
    return parser


def _installer(args: argparse.Namespace):
    from firmware_updater.install import Installer
    from firmware_updater.trust import load_trusted_keys

    keys = load_trusted_keys(args.trusted_keys) if getattr(args, "trusted_keys", None) else None
    return Installer(args.slots_dir, trusted=keys, hardware=getattr(args, "hardware", None))


def _print_inspect(report: dict, trust: dict[str, str] | None) -> None:
    m = report["manifest"]
    ranges = ", ".join(str(VersionRange(r["min"], r["max"])) for r in m["install_from"])
    print(f"bundle        {report['bundle']}")
    print(f"version       {m['version']}")
    print(f"hardware      {', '.join(m['hardware'])}")
    print(f"install from  {ranges}")
    print(f"payload       {m['payload_size']} bytes at offset {report['payload_offset']}, "
          f"sha256 {m['payload_sha256']}")
    print(f"chunks        {m['chunk_sha256']} of {m['chunk_size']} bytes")
    print(f"created       {m['created']}")
    sigs = [f"{k} ({trust[k]})" if trust else k for k in report["signatures"]]
    print(f"signatures    {', '.join(sigs) or 'none (unsigned)'}")
    print(f"file          {'complete' if report['complete'] else report['problem']}")
    if "payload_verified" in report:
        print(f"payload hash  {'ok' if report['payload_verified'] else 'MISMATCH'}")


def _inspect(args: argparse.Namespace) -> int:
    report = bundle_mod.describe(args.bundle, verify_payload=args.verify)
    trust = None
    if args.trusted_keys:
        from firmware_updater.errors import TrustError
        from firmware_updater.trust import load_trusted_keys, verify_manifest

        keys = load_trusted_keys(args.trusted_keys)
        with open(args.bundle, "rb") as f:
            header = bundle_mod.read_header(f.read)
        trust = {}
        for kid, sig in header.signatures:
            try:
                verify_manifest(header.manifest_bytes, [(kid, sig)], keys)
                trust[kid] = "trusted, valid"
            except TrustError as exc:
                trust[kid] = "INVALID" if "wrong signature" in str(exc) else "untrusted"
        report["trust"] = trust
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_inspect(report, trust)
    ok = report["complete"] and report.get("payload_verified", True)
    return 0 if ok else 1


def _print_status(status: dict) -> None:
    print(f"backend    {status['backend']}")
    for slot, manifest in status["slots"].items():
        marks = [word for word, on in (("active", status["active"] == slot),
                                       ("committed", status["committed"] == slot),
                                       ("tried", status["tried"] == slot)) if on]
        content = f"version {manifest['version']}" if manifest else "empty or incomplete"
        print(f"slot {slot}     {content}" + (f"  [{', '.join(marks)}]" if marks else ""))
    print(f"trying     {'yes' if status['trying'] else 'no'}")
    install = status.get("install")
    if install:
        line = f"install    {install['state']}"
        if install.get("version"):
            line += f": version {install['version']} into slot {install['target']}"
        if install["state"] == "downloading" and install.get("payload_size"):
            line += f" ({install['offset'] or 0}/{install['payload_size']} bytes checkpointed)"
        if install.get("reason"):
            line += f" - {install['reason']}"
        print(line)


def run(args: argparse.Namespace) -> int:
    if args.command == "keygen":
        from firmware_updater.trust import keygen

        kid = keygen(args.key)
        print(f"wrote {args.key} (private, 0600) and {args.key}.pub; key id {kid}")
        return 0
    if args.command == "build":
        install_from = args.install_from or [VersionRange(None, args.version - 1)]
        manifest = bundle_mod.build(args.src_dir, args.out, args.version, args.hardware,
                                    install_from, chunk_size=args.chunk_size)
        print(f"built {args.out}: version {manifest.version}, payload {manifest.payload_size} "
              f"bytes, unsigned (run `{PROG} sign`)")
        return 0
    if args.command == "sign":
        from firmware_updater.trust import load_private_key

        kid = bundle_mod.add_signature(args.bundle, load_private_key(args.key))
        print(f"signed {args.bundle} with key {kid}")
        return 0
    if args.command == "inspect":
        return _inspect(args)
    installer = _installer(args)
    if args.command == "status":
        status = installer.status()
        if args.json:
            print(json.dumps(status, indent=2))
        else:
            _print_status(status)
        return 0
    if args.command == "install":
        outcome = installer.install(args.source)
    elif args.command == "resume":
        outcome = installer.resume(boot=not args.no_boot)
    elif args.command == "commit":
        outcome = installer.commit()
    else:
        outcome = installer.rollback()
    print(outcome.message)
    good = {"install": (REBOOTING, TRYING), "commit": (COMMITTED,),
            "rollback": (ROLLED_BACK, FAILED)}.get(args.command)
    return 0 if good is None or outcome.state in good else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except FirmwareError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"{PROG}: {exc.strerror or exc}{where}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
