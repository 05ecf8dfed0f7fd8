"""The booted rig's network: a server namespace and a terminal namespace joined by one veth pair.

    batmb<id>s  192.0.2.1/24  (batm-server, Mosquitto)  ──veth──  192.0.2.10/24  batmb<id>t
                                                                  (the nspawn container's network)

Documentation range only, nothing routed out: the terminal reaches the server and loopback, and
nothing else (issue rules). `down` deletes the namespaces, which deletes the veth pair with them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

SERVER_ADDRESS = "192.0.2.1"
TERMINAL_ADDRESS = "192.0.2.10"
PREFIX = 24


class NetworkError(RuntimeError):
    """An `ip` command failed; str() is the command and its error output."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


@dataclass(frozen=True)
class RigNetwork:
    rig_id: str

    @property
    def server_netns(self) -> str:
        return f"batmb{self.rig_id}s"

    @property
    def terminal_netns(self) -> str:
        return f"batmb{self.rig_id}t"

    @property
    def terminal_netns_path(self) -> str:
        return f"/run/netns/{self.terminal_netns}"

    def up(self) -> None:
        try:
            self._up()
        except NetworkError:
            self.down()
            raise

    def _up(self) -> None:
        srv, term = self.server_netns, self.terminal_netns
        ip("netns", "add", srv)
        ip("netns", "add", term)
        # Created inside the server namespace, so no link ever appears in the root namespace.
        ip("-n", srv, "link", "add", "eth0", "type", "veth", "peer", "name", "host0",
           "netns", term)
        ip("-n", srv, "addr", "add", f"{SERVER_ADDRESS}/{PREFIX}", "dev", "eth0")
        ip("-n", term, "addr", "add", f"{TERMINAL_ADDRESS}/{PREFIX}", "dev", "host0")
        for ns, dev in ((srv, "eth0"), (term, "host0")):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", dev, "up")

    def down(self) -> list[str]:
        """Delete both namespaces; returns what could not be deleted (empty when clean)."""
        left = []
        for ns in (self.server_netns, self.terminal_netns):
            if ip("netns", "del", ns, check=False).returncode != 0 and self.exists(ns):
                left.append(ns)
        return left

    @staticmethod
    def exists(netns: str) -> bool:
        return netns in ip("netns", "list", check=False).stdout.split()
