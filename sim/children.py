"""The processes of a simulated rig: the server, and per terminal agent, console, display.

    server      ip netns exec <srv> batm-server run --data-dir D/server --listen 192.0.2.1:8443
    agent       ip netns exec <t_i> batm-agent run --state-dir … --hardware-dir … --slots-dir …
    socat       a pty pair: D/<serial>/console (rig end) ⇄ D/<serial>/console-terminal
    console     ip netns exec <t_i> batm-console --port D/<serial>/console-terminal --state-dir …
    xvfb        Xvfb -displayfd (picks a free display number itself: no races between rigs)
    display     batm-display --state-dir … --screenshot-dir … on that display. It runs in the
                root namespace: it only talks to the agent's Unix socket and the X server, and
                X clients reach Xvfb's abstract socket only from the namespace Xvfb is in.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sim import clock_skew, readiness
from sim import vpn as sim_vpn
from sim.errors import ActionError
from sim.layout import TerminalSpec
from sim.prereqs import component_command
from sim.procs import Child
from sim.restarts import restart_on_request

if TYPE_CHECKING:
    from sim.supervisor import Supervisor

AGENT_RETRY_MAX = "2"  # seconds: the simulated rig wants quick reconnects, not politeness
# Seconds before unacknowledged events count as a failed sync: short enough for a test to see a
# red row, long enough that a loaded CI machine's slow acknowledgement is not one.
AGENT_SYNC_ERROR_AFTER = "8"


def _command(supervisor: Supervisor, script: str, role: str, *args: str) -> list[str]:
    if supervisor.config.standins:
        return [sys.executable, "-m", "sim.standins", role, *args]
    return [component_command(script), *args]


def server_command(supervisor: Supervisor, data_dir: Path, gate: str, broker: str,
                   console: str) -> list[str]:
    return _command(supervisor, "batm-server", "server", "run",
                    "--data-dir", str(data_dir), "--listen", gate, "--mqtt-listen", broker,
                    "--console-listen", console, *supervisor.database.server_args(),
                    *sim_vpn.server_args(supervisor))


def server_child(supervisor: Supervisor) -> Child:
    layout = supervisor.layout
    argv = server_command(supervisor, layout.server_data, supervisor.gate, supervisor.broker,
                          supervisor.console)
    return Child("server", argv, layout.log("server"), supervisor.names.id,
                 netns=supervisor.server_netns())


class TerminalChildren:
    """Everything that makes up one simulated terminal."""

    def __init__(self, supervisor: Supervisor, index: int, spec: TerminalSpec):
        self.supervisor = supervisor
        self.index = index
        self.spec = spec
        layout = supervisor.layout
        serial = spec.serial
        rig_id = supervisor.names.id
        ns = supervisor.terminal_netns(index)
        self.state_dir = layout.state_dir(serial)
        self.clock_offset = 0  # seconds the agent's wall clock is off (sim/clock_skew.py)
        for path in (layout.console(serial), layout.console_terminal_end(serial)):
            if any(c in str(path) for c in ",:!"):
                raise ValueError(f"socat cannot take a pty link path with ',', ':' or '!': {path}")
        self.agent = Child(f"{serial}-agent", _command(
            supervisor, "batm-agent", "agent", "run",
            "--state-dir", str(self.state_dir),
            "--hardware-dir", str(layout.hardware_dir(serial)),
            "--slots-dir", str(layout.slots_dir(serial)),
            "--retry-max", AGENT_RETRY_MAX,
            "--sync-error-after", AGENT_SYNC_ERROR_AFTER,
            *sim_vpn.agent_args(supervisor, index),  # scenario A: rig-unique interface
        ), layout.log(f"{serial}-agent"), rig_id, netns=ns)
        self.socat = Child(f"{serial}-socat", [
            "socat", "-d", "-d",
            f"PTY,raw,echo=0,link={layout.console(serial)}",
            f"PTY,raw,echo=0,link={layout.console_terminal_end(serial)}",
        ], layout.log(f"{serial}-socat"), rig_id, netns=ns)
        self.console = Child(f"{serial}-console", _command(
            supervisor, "batm-console", "console",
            "--port", str(layout.console_terminal_end(serial)),
            "--state-dir", str(self.state_dir),
        ), layout.log(f"{serial}-console"), rig_id, netns=ns)
        self.display: str | None = None
        self.xvfb: Child | None = None
        self.display_proc: Child | None = None
        if supervisor.config.use_xvfb:
            self.xvfb = Child(f"{serial}-xvfb", [], layout.log(f"{serial}-xvfb"), rig_id)
            self.display_proc = Child(f"{serial}-display", _command(
                supervisor, "batm-display", "display",
                "--state-dir", str(self.state_dir),
                "--screenshot-dir", str(layout.screenshot_dir(serial)),
                "--size", supervisor.config.size,
            ), layout.log(f"{serial}-display"), rig_id,
                env={"SDL_AUDIODRIVER": "dummy", "SDL_VIDEODRIVER": "x11"})

    def children(self) -> list[Child]:
        return [c for c in (self.agent, self.socat, self.console, self.xvfb, self.display_proc)
                if c is not None]

    def start_all(self) -> None:
        deadline = time.monotonic() + 15
        self.agent.start()
        self.watch_agent()
        layout = self.supervisor.layout
        self.socat.start()
        links = (layout.console(self.spec.serial), layout.console_terminal_end(self.spec.serial))
        readiness.wait_until(lambda: all(p.exists() for p in links), deadline,
                             f"serial console pty pair of {self.spec.serial}", self.socat)
        self.console.start()
        if self.xvfb is not None and self.display_proc is not None:
            self.start_xvfb(deadline)
            self.display_proc.env["DISPLAY"] = self.display or ""
            self.display_proc.start()

    def start_xvfb(self, deadline: float) -> None:
        assert self.xvfb is not None
        read_fd, write_fd = os.pipe()
        width, height = self.supervisor.config.size.split("x")
        self.xvfb.argv = ["Xvfb", "-displayfd", str(write_fd),
                          "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"]
        self.xvfb.pass_fds = (write_fd,)
        try:
            self.xvfb.start()
            os.close(write_fd)
            self.display = readiness.read_display_number(read_fd, self.xvfb, deadline)
        finally:
            os.close(read_fd)

    def wait_ready(self, deadline: float) -> None:
        readiness.wait_agent(self.agent, self.state_dir, deadline)
        if self.display_proc is not None and self.display and not self.supervisor.config.standins:
            display = self.display
            readiness.wait_until(lambda: readiness.window_shown(display), deadline,
                                 f"display window of {self.spec.serial} on {display}",
                                 self.display_proc)
        for child in (self.socat, self.console):
            if not child.alive():
                raise readiness.NotReady(
                    f"{child.name} exited with {child.returncode()}; last lines of "
                    f"{child.log_path}:\n{readiness.log_tail(child.log_path)}"
                )

    def watch_agent(self) -> None:
        sup = self.supervisor
        restart_on_request(self.agent, sup.lock, sup.stopping, sup.log)

    def start_agent(self) -> None:
        self.agent.start()
        self.watch_agent()
        readiness.wait_agent(self.agent, self.state_dir, time.monotonic() + 30)

    def set_clock_offset(self, offset: int) -> None:
        """From the agent's next start on (restarts after an upgrade included)."""
        for name in clock_skew.VARIABLES:
            self.agent.env.pop(name, None)
        self.agent.env.update(clock_skew.environment(offset))
        self.clock_offset = offset

    def act(self, action: object, clock_offset: object = None) -> None:
        if clock_offset is not None:
            if action not in ("start", "restart"):
                raise ActionError("clock_offset goes with the start and restart actions only")
            try:
                self.set_clock_offset(clock_skew.parse_offset(clock_offset))
            except clock_skew.ClockSkewError as exc:
                raise ActionError(str(exc)) from None
        if action == "stop":
            self.agent.stop()
        elif action == "start":
            self.start_agent()
        elif action == "restart":
            self.agent.stop()
            self.start_agent()
        elif action == "kill":
            self.agent.kill()
            self.agent.log_exit()
        elif action == "wipe":
            self.agent.stop()
            # A terminal that "holds no valid credentials": keys, pins, settings, all gone.
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir.mkdir(parents=True, mode=0o700)
            self.start_agent()
        else:
            raise ActionError(
                f"terminal action must be stop, start, restart, kill or wipe, not {action!r}"
            )

    def stop_all(self) -> None:
        for child in (self.display_proc, self.console, self.agent, self.socat, self.xvfb):
            if child is not None:
                child.stop(timeout=3)
