"""Restart-on-request for simulated agents (like systemd's Restart=always for the agent).

An agent exits with RESTART_EXIT_CODE (agent/restart.py) after it armed a new firmware slot or
fell back to the old one: on a Pi systemd starts it again (and the Pi backend reboots with
tryboot); in the simulator the supervisor does. Any other exit - a crash, `stop`, a SIGKILL
"power cut" - leaves the agent down, as before, so a test sees a failure instead of a mask.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from agent.restart import RESTART_EXIT_CODE
from sim.procs import Child


def restart_on_request(child: Child, lock: threading.RLock, stopping: threading.Event,
                       log: Callable[[str], None]) -> None:
    """Watch the process `child` runs now; start it again if it asks to be restarted."""
    proc = child.proc
    if proc is None:
        return

    def watch() -> None:
        code = proc.wait()
        with lock:
            if code != RESTART_EXIT_CODE or stopping.is_set() or child.proc is not proc:
                return
            child.log_exit()
            log(f"{child.name} asked to be restarted (exit {code}): starting it again")
            child.start()
            restart_on_request(child, lock, stopping, log)

    threading.Thread(target=watch, name=f"restart-{child.name}", daemon=True).start()
