"""Wait-for-condition helpers: each polls something observable and fails with the log tail.

No fixed sleeps anywhere in the rig: a condition is polled every 50 ms until it holds, its
process dies, or the deadline passes.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from batm_common.control_client import answers

if TYPE_CHECKING:
    from sim.procs import Child
    from sim.supervisor import Supervisor

POLL = 0.05


class NotReady(RuntimeError):
    """A part of the rig did not come up; str() says which and shows its log's last lines."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:]) or "    (empty log)"


def wait_until(
    condition: Callable[[], bool], deadline: float, what: str, child: Child | None = None
) -> None:
    while True:
        if condition():
            return
        if child is not None and child.proc is not None and not child.alive():
            child.log_exit()
            raise NotReady(
                f"{what}: {child.name} exited with {child.returncode()} before it was ready; "
                f"last lines of {child.log_path}:\n{log_tail(child.log_path)}"
            )
        if time.monotonic() > deadline:
            tail = f"; last lines of {child.log_path}:\n{log_tail(child.log_path)}" if child else ""
            raise NotReady(f"{what}: not ready in time{tail}")
        time.sleep(POLL)


def admin_answers(admin_socket: str, timeout: float = 1.0) -> bool:
    """The server's admin API answers an HTTP request on its Unix socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(admin_socket)
            s.sendall(b"GET /api/v1/terminals HTTP/1.1\r\nHost: batm\r\nConnection: close\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


def server_ready(data_dir: Path) -> bool:
    try:
        info = json.loads((data_dir / "server.json").read_text())
    except (OSError, ValueError):
        return False
    admin = info.get("admin_socket") if isinstance(info, dict) else None
    return isinstance(admin, str) and admin_answers(admin)


def wait_server(supervisor: Supervisor, deadline: float) -> None:
    data = supervisor.layout.server_data
    wait_until(lambda: server_ready(data), deadline, "server", supervisor.server)


def wait_agent(child: Child, state_dir: Path, deadline: float) -> None:
    sock = state_dir / "control.sock"
    wait_until(lambda: answers(sock), deadline, f"agent control socket {sock}", child)


def window_shown(display: str) -> bool:
    """Some window is mapped on the X display (the terminal's screen is up)."""
    try:
        proc = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--class", "."],
            env={"DISPLAY": display}, capture_output=True, timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip())


def read_display_number(fd: int, child: Child, deadline: float) -> str:
    """Xvfb -displayfd writes the display number it chose once it accepts clients."""
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (child.proc is not None and not child.alive()):
            raise NotReady(
                f"Xvfb did not report a display; last lines of {child.log_path}:\n"
                f"{log_tail(child.log_path)}"
            )
        readable, _, _ = select.select([fd], [], [], min(remaining, 0.2))
        if readable:
            chunk = os.read(fd, 64)
            if not chunk:
                raise NotReady(f"Xvfb closed its display fd; see {child.log_path}")
            data += chunk
    return ":" + data.split(b"\n")[0].decode().strip()
