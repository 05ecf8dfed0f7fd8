"""Names and addresses of one simulated rig, all derived from its directory.

Two rigs can run side by side (two pytest workers, a demo next to a test run) because every
namespace, link and environment marker carries a short id hashed from the rig directory's real
path. Linux caps interface names at 15 characters (IFNAMSIZ - 1); namespace names have no such
limit, but we keep them as short so that `ip` listings stay readable.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

IFNAME_MAX = 15
MAX_TERMINALS = 99  # 192.0.2.10 .. 192.0.2.108, and "t<i>" stays two digits

SERVER_NET = ipaddress.IPv4Network("192.0.2.0/24")
SERVER_ADDRESS = "192.0.2.1"
GATE_PORT = 8443
BROKER_PORT = 8883  # the master service's MQTT/TLS listener (batm-server's default)
PROXY_PORT = 8444  # where HIL tests put a TLS interceptor, in the server namespace
# The operator console; not batm-server's default 8444, which the interceptor above takes.
CONSOLE_PORT = 8445
TERMINAL_HOST_BASE = 10  # terminal i is 192.0.2.(10 + i)
SPARE_NET = ipaddress.IPv4Network("198.51.100.0/24")  # reserved for fault-injection extras

# Every process of a rig carries this variable; `down` finds stragglers by it even after the
# supervisor crashed (the environment is inherited by grandchildren, `ip netns exec` keeps it).
ENV_MARKER = "BATM_SIM_RIG"
NAME_PREFIX = "batm-"


def rig_id(rig_dir: Path | str) -> str:
    """Six hex digits from the rig directory's real path: stable for one directory."""
    real = os.path.realpath(os.fspath(rig_dir))
    return hashlib.sha256(real.encode()).hexdigest()[:6]


@dataclass(frozen=True)
class RigNames:
    """Every kernel-visible name one rig uses."""

    id: str

    def __post_init__(self) -> None:
        if len(self.id) != 6 or any(c not in "0123456789abcdef" for c in self.id):
            raise ValueError(f"rig id must be 6 lowercase hex digits, got {self.id!r}")

    @classmethod
    def for_dir(cls, rig_dir: Path | str) -> RigNames:
        return cls(rig_id(rig_dir))

    @property
    def prefix(self) -> str:
        """Start of every namespace name of this rig (and of no other rig's)."""
        return f"{NAME_PREFIX}{self.id}-"

    @property
    def server_netns(self) -> str:
        return f"{self.prefix}srv"

    def terminal_netns(self, index: int) -> str:
        _check_index(index)
        return f"{self.prefix}t{index}"

    @property
    def bridge(self) -> str:
        """The bridge in the server namespace that every terminal's veth joins."""
        return f"br{self.id}"

    def server_veth(self, index: int) -> str:
        """Server-side end of terminal `index`'s veth pair (lives in the server namespace)."""
        _check_index(index)
        return f"vs{self.id}t{index}"

    def terminal_veth(self, index: int) -> str:
        """Terminal-side end (lives in the terminal namespace)."""
        _check_index(index)
        return f"vt{self.id}t{index}"

    def all_links(self, terminals: int) -> list[str]:
        names = [self.bridge]
        for i in range(terminals):
            names += [self.server_veth(i), self.terminal_veth(i)]
        return names

    def owns_name(self, name: str) -> bool:
        """True for a namespace or link name this rig could have made."""
        return name.startswith(self.prefix) or (self.id in name and len(name) <= IFNAME_MAX)


def terminal_address(index: int) -> str:
    _check_index(index)
    return str(SERVER_NET.network_address + TERMINAL_HOST_BASE + index)


def default_serial(index: int) -> str:
    return f"SIM{index + 1:05d}"


def _check_index(index: int) -> None:
    if not 0 <= index < MAX_TERMINALS:
        raise ValueError(f"terminal index {index} is outside 0..{MAX_TERMINALS - 1}")
