"""JSON lines over a Unix socket (docs/protocol.md §4 and §5): one object per line each way.

The agent's control socket and the rig supervisor's sim.sock both speak it. This module holds the
framing both ends share; batm_common/control_client.py is the blocking client built on it.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

SOCKET_NAME = "control.sock"
# sun_path holds 108 bytes on Linux; longer paths are reached through the directory's fd.
_SUN_PATH_MAX = 107


def socket_path(target: str | os.PathLike[str]) -> Path:
    """The control socket of a state directory, or `target` itself if it is a socket path."""
    path = Path(target)
    if path.is_dir():
        return path / SOCKET_NAME
    if path.exists() or path.suffix == ".sock":
        return path
    return path / SOCKET_NAME


def encode_line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode() + b"\n"


def connect_unix(path: str | os.PathLike[str], timeout: float | None) -> socket.socket:
    """A stream socket connected to `path` (any length); OSError as connect() raises it."""
    path = Path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        raw = os.fsencode(path)
        if len(raw) <= _SUN_PATH_MAX:
            sock.connect(raw)
        else:
            # Deep state directories (test temp dirs, long mount points) exceed sun_path;
            # /proc/self/fd/N/<name> resolves through an open descriptor of the directory.
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                sock.connect(f"/proc/self/fd/{dir_fd}/{path.name}")
            finally:
                os.close(dir_fd)
        return sock
    except BaseException:
        sock.close()
        raise
