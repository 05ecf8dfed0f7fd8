"""The rig network: a server namespace with a bridge, one namespace per terminal.

    server netns  batm-<id>-srv   bridge br<id> 192.0.2.1/24, lo
                                    ├── vs<id>t0 ══ vt<id>t0  192.0.2.10/24  in batm-<id>-t0
                                    └── vs<id>t1 ══ vt<id>t1  192.0.2.11/24  in batm-<id>-t1

Each veth pair is created with its ends directly inside the two namespaces, so no link of the rig
ever sits in the root namespace, and nothing routes out: the namespaces have no default route.
Teardown kills whatever still runs in the namespaces (a namespace with a process in it survives
`ip netns del`) and deletes them, which deletes their links; it is idempotent and works from
names alone, so it also cleans after a crashed supervisor.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass

from sim.naming import SERVER_ADDRESS, SERVER_NET, RigNames, terminal_address


class NetworkError(RuntimeError):
    """An `ip` command failed; str() has the command and its error output."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetworkError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip() or proc.returncode}")
    return proc


def list_netns() -> list[str]:
    out = ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def list_root_links() -> list[str]:
    out = ip("-o", "link", "show", check=False).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


@dataclass(frozen=True)
class RigNetwork:
    names: RigNames
    terminals: int
    prefix_len: int = SERVER_NET.prefixlen

    @property
    def server_netns(self) -> str:
        return self.names.server_netns

    def terminal_netns(self, index: int) -> str:
        return self.names.terminal_netns(index)

    def namespaces(self) -> list[str]:
        return [self.server_netns] + [self.terminal_netns(i) for i in range(self.terminals)]

    def up(self) -> None:
        """Create everything; on any failure remove what was made and re-raise."""
        try:
            self._up()
        except BaseException:
            teardown(self.names)
            raise

    def _up(self) -> None:
        n = self.names
        srv = self.server_netns
        ip("netns", "add", srv)
        ip("-n", srv, "link", "set", "lo", "up")
        ip("-n", srv, "link", "add", n.bridge, "type", "bridge")
        ip("-n", srv, "addr", "add", f"{SERVER_ADDRESS}/{self.prefix_len}", "dev", n.bridge)
        ip("-n", srv, "link", "set", n.bridge, "up")
        for i in range(self.terminals):
            self.add_terminal(i)

    def add_terminal(self, index: int) -> None:
        n = self.names
        srv, term = self.server_netns, self.terminal_netns(index)
        ip("netns", "add", term)
        ip("-n", term, "link", "set", "lo", "up")
        ip("-n", srv, "link", "add", n.server_veth(index), "type", "veth",
           "peer", "name", n.terminal_veth(index), "netns", term)
        ip("-n", srv, "link", "set", n.server_veth(index), "master", n.bridge)
        ip("-n", srv, "link", "set", n.server_veth(index), "up")
        addr = f"{terminal_address(index)}/{self.prefix_len}"
        ip("-n", term, "addr", "add", addr, "dev", n.terminal_veth(index))
        ip("-n", term, "link", "set", n.terminal_veth(index), "up")


def netns_pids(netns: str) -> list[int]:
    out = ip("netns", "pids", netns, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def kill_netns_processes(netns: str, grace: float = 2.0) -> None:
    """SIGTERM everything in the namespace, then SIGKILL what is left after `grace` seconds."""
    pids = netns_pids(netns)
    if not pids:
        return
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and netns_pids(netns):
        time.sleep(0.05)
    for pid in netns_pids(netns):
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and netns_pids(netns):
        time.sleep(0.05)


def _signal(pid: int, sig: int) -> None:
    if pid == os.getpid():
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def teardown(names: RigNames) -> list[str]:
    """Delete every namespace and root-namespace link this rig could have made.

    Returns what was removed (for the log). Safe to call any number of times.
    """
    removed = []
    # Terminals first: deleting them takes the veth pairs with them, then the server and bridge.
    mine = [ns for ns in list_netns() if ns.startswith(names.prefix)]
    mine.sort(key=lambda ns: ns.endswith("-srv"))
    for ns in mine:
        kill_netns_processes(ns)
        if ip("netns", "del", ns, check=False).returncode == 0:
            removed.append(f"netns {ns}")
    for link in list_root_links():
        deletable = names.owns_name(link) and link != "lo"
        if deletable and ip("link", "del", link, check=False).returncode == 0:
            removed.append(f"link {link}")
    return removed


def leftovers(names: RigNames) -> list[str]:
    """Namespaces and root links still named after this rig (empty after a clean teardown)."""
    found = [f"netns {ns}" for ns in list_netns() if ns.startswith(names.prefix)]
    found += [f"link {ln}" for ln in list_root_links() if names.owns_name(ln)]
    return found
