"""Target: one terminal of a rig with its drivers bound (labgrid's Target).

A test asks the target for what it needs: `target.console` (serial console),
`target.agent` (batm-agent CLI), `target.server` (batm-server CLI), `target.power`
(simulator supervisor; None on a rig that has no power control).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hil_tests.rig.drivers import AgentDriver, SerialConsoleDriver, ServerDriver, SimPowerDriver
from hil_tests.rig.resources import RigFile, TerminalResource
from hil_tests.rig.trace import StepTrace


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

    def reset(self) -> None:
        """Back to "never paired" on a rig shared between tests (BATM_RIG): the server forgets
        the terminal and, where the rig can, the terminal loses its state."""
        if self.power is not None:
            self.power.start_server()  # a previous test may have stopped it
        if self.server.terminal(self.serial) is not None:
            self.server.delete_terminal(self.serial)
        if self.power is not None:
            self.power.wipe()

    def close(self) -> None:
        self.console.deactivate()

    @classmethod
    def for_terminal(cls, rig: RigFile, index: int = 0, trace: StepTrace | None = None) -> Target:
        return cls(rig, rig.terminals[index], trace or StepTrace())
