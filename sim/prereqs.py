"""What the simulated rig needs from the machine, and how to say what is missing.

Every missing piece is named together with the Debian package that provides it, because the
person reading the message is about to type `apt-get install`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

# binary -> Debian package
BINARIES = {
    "ping": "iputils-ping",
    "ip": "iproute2",
    "socat": "socat",
    "Xvfb": "xvfb",
    "xdotool": "xdotool",
}
# Needed only with namespaces (root); without root the rig runs on loopback.
NETNS_BINARIES = ("ip",)
# Without these the rig still runs, with a part left out (and says so).
OPTIONAL_BINARIES = ("Xvfb", "xdotool")

# Product components the rig launches: console script -> module that must import.
COMPONENTS = {
    "batm-server": "server.cli",
    "batm-agent": "agent.cli",
    "batm-console": "agent.console",
    "batm-display": "display.app",
}


class PrerequisiteError(RuntimeError):
    """Something the rig cannot run without; str() says what to install."""


@dataclass(frozen=True)
class Missing:
    what: str
    package: str

    def __str__(self) -> str:
        return f"{self.what} (Debian package {self.package})"


def is_root() -> bool:
    return os.geteuid() == 0


def which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def missing_binaries(names: tuple[str, ...] | list[str]) -> list[Missing]:
    return [Missing(n, BINARIES[n]) for n in names if which(n) is None]


def install_hint(missing: list[Missing]) -> str:
    packages = " ".join(sorted({m.package for m in missing}))
    return f"apt-get install {packages}"


def require_binaries(names: tuple[str, ...] | list[str]) -> None:
    missing = missing_binaries(names)
    if missing:
        raise PrerequisiteError(
            "the simulated rig needs " + ", ".join(str(m) for m in missing)
            + f": install with `{install_hint(missing)}`"
        )


def bin_dir() -> Path:
    """The directory of this Python's console scripts (the project venv's bin)."""
    return Path(sys.executable).parent


def component_command(script: str) -> str:
    """Absolute path of a console script: `ip netns exec` needs one, PATH may not have the venv."""
    local = bin_dir() / script
    if local.exists():
        return str(local)
    found = which(script)
    if found is None:
        raise PrerequisiteError(f"{script} is not installed (run `make venv`)")
    return found


def missing_components(skip: tuple[str, ...] = ()) -> list[str]:
    """Console scripts whose module cannot be imported (an incomplete install)."""
    absent = []
    for script, module in COMPONENTS.items():
        if script in skip:
            continue
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            absent.append(f"{script} ({module})")
    return absent
