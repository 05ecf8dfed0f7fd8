"""Can this WireGuard key complete a handshake with the server? A throw-away interface answers.

    ip netns exec NS python -m hil_tests.rig.wg_probe --ifname wgXXXXXXp --key-file F
        --peer SERVER_PUBLIC_KEY --endpoint 192.0.2.1:51820 --allowed 198.51.100.1/32
        --address 198.51.100.2/24 [--timeout 6]

Prints {"handshake": true|false, "seconds": …} and removes the interface whatever happens.
The HIL suite runs it in a terminal's namespace (batm_common/wireguard.py does the WireGuard work).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from batm_common.wireguard import PeerSpec, WgError, WgInterface


def probe(args: argparse.Namespace) -> dict:
    key = Path(args.key_file).read_text().strip()
    host, port = args.endpoint.rsplit(":", 1)
    iface = WgInterface(args.ifname)
    started = time.time()
    try:
        iface.create()
        spec = PeerSpec(args.peer, (args.allowed,), (host, int(port)), 1)
        iface.set(private_key=key, peers=(spec,), replace_peers=True)
        iface.set_address(args.address, 1420, routes=(args.allowed,))
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            peers = iface.peers()
            if peers and peers[0].last_handshake and peers[0].last_handshake >= started - 1:
                return {"handshake": True, "seconds": round(time.time() - started, 3)}
            time.sleep(0.05)
        return {"handshake": False, "seconds": round(time.time() - started, 3)}
    finally:
        iface.delete()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wg_probe")
    for name in ("--ifname", "--key-file", "--peer", "--endpoint", "--allowed", "--address"):
        parser.add_argument(name, required=True)
    parser.add_argument("--timeout", type=float, default=6.0)
    args = parser.parse_args(argv)
    try:
        print(json.dumps(probe(args)))
    except (WgError, OSError) as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
