"""Target: one terminal of a rig with its drivers bound (labgrid's Target).

A test asks the target for what it needs: `target.console` (serial console),
`target.agent` (batm-agent CLI), `target.server` (batm-server CLI), `target.power`
(simulator supervisor; None on a rig that has no power control).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from hil_tests.rig.drivers import (
    AgentDriver,
    CommandFailed,
    SerialConsoleDriver,
    ServerDriver,
    SimPowerDriver,
)
from hil_tests.rig.resources import RigFile, TerminalResource
from hil_tests.rig.trace import StepTrace, step


@dataclass
class Target:
    rig: RigFile
    terminal: TerminalResource
    trace: StepTrace = field(default_factory=StepTrace)

    def __post_init__(self) -> None:
        self.console = SerialConsoleDriver(self.terminal, self.trace)
        self.agent = AgentDriver(self.terminal, self.trace)
        self.server = ServerDriver(self.rig.server, self.trace)
        self.power = (
            SimPowerDriver(self.rig.supervisor, self.terminal.serial, self.trace)
            if self.rig.supervisor else None
        )

    def __repr__(self) -> str:
        return f"Target({self.terminal.serial} on {self.rig.kind} rig {self.rig.rig_id or ''})"

    @property
    def serial(self) -> str:
        return self.terminal.serial

    @property
    def gate(self) -> str:
        return self.rig.server.gate_address

    @step
    def reset(self) -> None:
        """Back to "never paired" on a rig shared between tests: the server forgets the terminal
        and, where the rig can, the terminal loses its state."""
        if self.power is not None:
            self.power.start_server()  # a previous test may have stopped it
        # Most tests made the terminal: delete it straight away, ask only when that failed.
        deleted = self.server.run("terminal", "delete", self.serial)
        if deleted.returncode != 0 and self.server.terminal(self.serial) is not None:
            raise CommandFailed(deleted)
        if self.power is not None:
            self.power.wipe()
            self.screenshots_from_now()

    @step
    def screenshots_from_now(self, timeout: float = 30.0) -> None:
        """Leave in the simulated display's screenshot directory only what a fresh rig's would
        hold (the set_server screen), so a test's screenshots are its own; earlier ones move
        to earlier/."""
        shots = Path(self.terminal.screenshot_dir or "")
        if self.rig.kind != "sim" or not self.terminal.display or not shots.is_dir():
            return
        deadline = time.monotonic() + timeout
        while (shown := _shown(shots)) != "set_server":
            if shown and shown.startswith("admin_"):
                raise AssertionError(
                    f"the display still shows its advanced administration ({shown}) after the "
                    f"wipe: a test that opens it needs a rig of its own (mark it fresh_rig)")
            if time.monotonic() > deadline:
                raise AssertionError(f"the display did not show set_server after the wipe "
                                     f"(screen.json: {_shown(shots)!r})")
            time.sleep(0.05)
        numbered = sorted(shots.glob("[0-9][0-9][0-9]-*.png"))
        (shots / "earlier").mkdir(exist_ok=True)
        for path in numbered[:-1]:  # the last one shows set_server, on screen now
            path.rename(shots / "earlier" / path.name)

    def close(self) -> None:
        self.console.deactivate()

    @classmethod
    def for_terminal(cls, rig: RigFile, index: int = 0, trace: StepTrace | None = None) -> Target:
        return cls(rig, rig.terminals[index], trace or StepTrace())


def _shown(screenshot_dir: Path) -> str | None:
    try:
        return json.loads((screenshot_dir / "screen.json").read_text()).get("screen")
    except (OSError, ValueError):
        return None
