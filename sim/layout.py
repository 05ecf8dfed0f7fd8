"""Where a simulated rig keeps things inside its directory D, and the config `up` hands over.

    D/rig.json            the rig file (written last, atomically, when everything is ready)
    D/sim.sock            the supervisor (docs/protocol.md §5)
    D/sim-config.json     what `up` asked for; the supervisor reads it
    D/sim-state.json      supervisor pid, namespaces, display numbers: for `down` after a crash
    D/logs/*.log          supervisor, server, <serial>-{agent,console,socat,xvfb,display}
    D/server/             the server's data dir
    D/server-2/           the second replica's (--replicas 2)
    D/postgres/           the rig's PostgreSQL cluster (--database postgresql)
    D/<serial>/           hardware/, slots/, state/, screenshots/, console (pty link, rig end)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sim.naming import RigNames, default_serial

DEFAULT_VERSION = 20230801
RESERVED_NAMES = ("logs", "server", "server-2", "postgres", "rig.json", "sim.sock",
                  "sim-config.json", "sim-state.json", "firmware", "firmware-keys")
MODEL = "Raspberry Pi 4 Model B Rev 1.4 (simulated)"
HARDWARE = "rpi4"

# Who answers on D/sim.sock, as error sentences name it.
SUPERVISOR = "the rig supervisor"


@dataclass(frozen=True)
class TerminalSpec:
    serial: str
    version: int


@dataclass(frozen=True)
class RigConfig:
    dir: str
    terminals: list[TerminalSpec]
    scenario: str = "B"
    use_netns: bool = True
    use_xvfb: bool = True
    standins: bool = False  # stand-in processes instead of the product (tests of the rig itself)
    size: str = "800x480"
    timeout: float = 60.0
    rig_id: str = field(default="")
    database: str = "sqlite"  # or "postgresql" (sim/replicas.py)
    replicas: int = 1  # server processes on that database

    def __post_init__(self) -> None:
        if not self.rig_id:
            object.__setattr__(self, "rig_id", RigNames.for_dir(self.dir).id)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> RigConfig:
        data = json.loads(path.read_text())
        data["terminals"] = [TerminalSpec(**t) for t in data["terminals"]]
        return cls(**data)


def parse_terminal_specs(
    count: int, versions: str | None, serials: str | None
) -> list[TerminalSpec]:
    """--terminals N --versions V,... --serials S,... → one spec per terminal, or ValueError."""
    if not 1 <= count <= 99:
        raise ValueError(f"--terminals must be 1..99, got {count}")
    version_list = [v.strip() for v in versions.split(",")] if versions else []
    serial_list = [s.strip() for s in serials.split(",")] if serials else []
    if version_list and len(version_list) not in (1, count):
        raise ValueError(f"--versions has {len(version_list)} entries for {count} terminal(s)")
    if serial_list and len(serial_list) != count:
        raise ValueError(f"--serials has {len(serial_list)} entries for {count} terminal(s)")
    specs = []
    for i in range(count):
        text = (version_list[i] if len(version_list) > 1 else version_list[0]) if version_list \
            else str(DEFAULT_VERSION)
        if not (text.isdigit() and len(text) == 8 and 1 <= int(text[4:6]) <= 12):
            raise ValueError(f"--versions: {text!r} is not a YYYYMMDD version")
        serial = serial_list[i] if serial_list else default_serial(i)
        if not serial or not all(c.isalnum() or c in "._-" for c in serial) or len(serial) > 64:
            raise ValueError(f"--serials: {serial!r} may hold only letters, digits, '.', '_', '-'")
        if serial in RESERVED_NAMES or serial.startswith("."):
            raise ValueError(f"--serials: {serial!r} is a name the rig directory uses itself")
        specs.append(TerminalSpec(serial, int(text)))
    if len({s.serial for s in specs}) != len(specs):
        raise ValueError("--serials: each terminal needs its own serial")
    return specs


class Layout:
    def __init__(self, rig_dir: Path | str):
        self.dir = Path(os.path.abspath(rig_dir))

    rig_file = property(lambda self: self.dir / "rig.json")
    sim_sock = property(lambda self: self.dir / "sim.sock")  # served by SUPERVISOR
    config = property(lambda self: self.dir / "sim-config.json")
    state = property(lambda self: self.dir / "sim-state.json")
    logs = property(lambda self: self.dir / "logs")
    server_data = property(lambda self: self.dir / "server")
    replica_data = property(lambda self: self.dir / "server-2")
    postgres = property(lambda self: self.dir / "postgres")

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def terminal(self, serial: str) -> Path:
        return self.dir / serial

    def state_dir(self, serial: str) -> Path:
        return self.terminal(serial) / "state"

    def hardware_dir(self, serial: str) -> Path:
        return self.terminal(serial) / "hardware"

    def slots_dir(self, serial: str) -> Path:
        return self.terminal(serial) / "slots"

    def screenshot_dir(self, serial: str) -> Path:
        return self.terminal(serial) / "screenshots"

    def console(self, serial: str) -> Path:
        return self.terminal(serial) / "console"

    def console_terminal_end(self, serial: str) -> Path:
        return self.terminal(serial) / "console-terminal"

    def make_terminal_files(self, spec: TerminalSpec) -> None:
        """Hardware facts and an A/B slot directory with `active -> a`, as the agent reads them."""
        hw = self.hardware_dir(spec.serial)
        hw.mkdir(parents=True, exist_ok=True)
        (hw / "serial-number").write_text(spec.serial + "\n")
        (hw / "model").write_text(MODEL + "\n")
        slots = self.slots_dir(spec.serial)
        (slots / "a").mkdir(parents=True, exist_ok=True)
        manifest = {"version": spec.version, "hardware": HARDWARE}
        (slots / "a" / "manifest.json").write_text(json.dumps(manifest) + "\n")
        active = slots / "active"
        if not active.is_symlink():
            active.symlink_to("a")
        self.state_dir(spec.serial).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.screenshot_dir(spec.serial).mkdir(parents=True, exist_ok=True)
