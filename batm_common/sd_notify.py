"""sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET.

Used for Type=notify ("READY=1" once the control socket listens, "STATUS=…", "STOPPING=1").
Without NOTIFY_SOCKET (not started by systemd, tests) every call is a no-op.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def sd_notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send `message` (e.g. "READY=1\\nSTATUS=pairing") to systemd. True if it was sent.

    Never raises: the service must not fail because its supervisor cannot be told something.
    """
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        target: str | bytes = "\0" + address[1:]  # Linux abstract namespace
    elif address.startswith("/"):
        target = address
    else:
        return False  # unset, or a transport we do not speak (vsock:)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def ready(status: str | None = None) -> bool:
    return sd_notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def status(text: str) -> bool:
    return sd_notify(f"STATUS={text}")


def stopping() -> bool:
    return sd_notify("STOPPING=1")
