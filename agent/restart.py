"""How the agent asks to be started again, and how it reboots the terminal.

The agent exits with RESTART_EXIT_CODE after it armed a new firmware slot or fell back to the old
one, and (outside systemd) in place of a reboot: its supervisor — systemd's Restart=always on a
Pi (systemd/batm-agent.service), the simulator's (sim/restarts.py) — starts it again. Any other
exit leaves it down, so a crash shows as a failure instead of being masked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess

log = logging.getLogger("batm-agent")

RESTART_EXIT_CODE = 75  # EX_TEMPFAIL: "restart me"


def reboot_terminal() -> None:
    """Reboot. Under systemd (INVOCATION_ID set): `systemctl reboot` (the agent's user needs a
    polkit rule granting org.freedesktop.login1.reboot). Elsewhere (the simulator, a shell): the
    agent exits with RESTART_EXIT_CODE half a second later, after its answer went out, so that a
    supervisor restarting it plays the reboot."""
    if os.environ.get("INVOCATION_ID") and shutil.which("systemctl"):
        result = subprocess.run(["systemctl", "reboot"], capture_output=True, text=True,
                                timeout=30)
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip() or f"systemctl exited {result.returncode}")
        return
    log.warning("not under systemd: exiting with status %d instead of rebooting",
                RESTART_EXIT_CODE)
    try:
        asyncio.get_running_loop().call_later(0.5, os._exit, RESTART_EXIT_CODE)
    except RuntimeError:  # no loop (a tool calling this directly): exit now
        os._exit(RESTART_EXIT_CODE)
