"""What the HIL suite needs before it can bring up a simulated rig, as one message.

Outside CI a missing prerequisite skips the suite with that message; with CI=true it fails it
(architecture §6: in CI a missing prerequisite is a failure, not a skip). That includes the
product's own commands: a broken install must not pass as "skipped".
"""

from __future__ import annotations

import os

from sim import prereqs

SIM_BINARIES = ("ip", "socat", "Xvfb", "xdotool")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_prerequisites() -> str | None:
    problems = []
    if not prereqs.is_root():
        problems.append("root (the simulated rig puts the server and each terminal in their own "
                        "network namespace: run the suite as root, e.g. `sudo make hil`)")
    missing = prereqs.missing_binaries(SIM_BINARIES)
    if missing:
        problems.append(", ".join(str(m) for m in missing)
                        + f": `{prereqs.install_hint(missing)}` (or `make system-deps`)")
    return "; ".join(problems) or None


def missing_components() -> str | None:
    """Product commands the rig runs (batm-server, batm-agent, batm-console, batm-display)."""
    absent = prereqs.missing_components()
    return ", ".join(absent) if absent else None
