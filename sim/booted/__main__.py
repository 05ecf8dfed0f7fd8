"""`python -m sim.booted up|down --dir D [--deb dist/batm-terminal_….deb]`.

    up     build (or reuse) the cached rootfs, boot it, start the server; writes D/rig.json and
           prints the timings. Then: BATM_RIG=D/rig.json pytest hil_tests/…
    down   stop the machine and the server, unmount, delete the namespaces

Exit 0 on success, 1 with one sentence on stderr otherwise; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.booted.rig import BootedRigError, down, up


def newest_deb() -> Path | None:
    debs = sorted(Path("dist").glob("batm-terminal_*.deb"), key=lambda p: p.stat().st_mtime)
    return debs[-1].resolve() if debs else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.booted",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up_cmd = sub.add_parser("up", help="boot the packaged terminal and start a server")
    up_cmd.add_argument("--dir", required=True, type=Path)
    up_cmd.add_argument("--deb", type=Path, help="default: the newest dist/batm-terminal_*.deb")
    up_cmd.add_argument("--timeout", type=float, default=120.0)
    down_cmd = sub.add_parser("down", help="stop and remove the rig")
    down_cmd.add_argument("--dir", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            deb = args.deb or newest_deb()
            if deb is None:
                raise BootedRigError("no dist/batm-terminal_*.deb: run `make packages` first")
            t = up(args.dir, deb, args.timeout)
            print(f"booted rig up in {args.dir}: rootfs {'built' if t.rootfs_built else 'cached'} "
                  f"in {t.rootfs_seconds:.1f} s, boot to agent ready {t.boot_seconds:.1f} s")
            print(f"BATM_RIG={args.dir.resolve() / 'rig.json'}")
        else:
            left = down(args.dir)
            if left:
                raise BootedRigError(f"left behind: {', '.join(left)}")
    except BootedRigError as exc:
        print(f"booted rig: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
