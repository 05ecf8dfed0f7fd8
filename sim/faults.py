"""Network faults on a simulated rig: cut and restore a terminal's link (protocol.md §5).

`{"cmd": "link", "serial": S, "action": "down"|"up"}` sets the terminal's veth end down or up
inside its namespace: TCP connections stall exactly as when a cable is pulled (no RST), so the
MQTT link notices only by its keepalive — the realistic case.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.supervisor import Supervisor

FAULT_COMMANDS = ("link",)


class FaultError(RuntimeError):
    """The fault could not be injected; str() goes back to the client."""


def handle(supervisor: Supervisor, request: dict) -> dict:
    serial, action = request.get("serial"), request.get("action")
    terminal = supervisor.terminals.get(serial) if isinstance(serial, str) else None
    if terminal is None:
        raise FaultError(f"no terminal {serial!r} in this rig (have: {list(supervisor.terminals)})")
    if action not in ("down", "up"):
        raise FaultError(f"link action must be down or up, not {action!r}")
    netns = supervisor.terminal_netns(terminal.index)
    if netns is None:
        raise FaultError("this rig runs without namespaces (loopback): it has no link to cut")
    link = supervisor.names.terminal_veth(terminal.index)
    result = subprocess.run(["ip", "-n", netns, "link", "set", link, action],
                            capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise FaultError(f"ip link set {link} {action} failed: {result.stderr.strip()}")
    supervisor.log(f"link of {serial} ({link}) {action}")
    return {"ok": True, "link": link, "state": action}
