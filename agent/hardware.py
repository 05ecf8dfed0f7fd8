"""Facts the terminal learns from its hardware and its active firmware slot.

On a Raspberry Pi the serial number and model come from the device tree; the simulator points
`--hardware-dir` at a directory holding the same two files. The firmware version is the version
in the active slot's manifest (the slot layout is the firmware updater's directory backend).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

DEVICE_TREE = Path("/proc/device-tree")
SERIAL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class HardwareError(RuntimeError):
    """A fact the agent cannot run without is missing; str() says which and where."""


@dataclass(frozen=True)
class TerminalFacts:
    serial: str
    model: str
    version: int
    slot_hardware: str | None = None  # the active slot's hardware name (e.g. "rpi4")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_bytes().rstrip(b"\x00\n\r ").decode("ascii", "replace").strip()
    except OSError:
        return None


def read_serial(hardware_dir: Path | None) -> str:
    path = (hardware_dir or DEVICE_TREE) / "serial-number"
    serial = _read_text(path)
    if serial is None:
        raise HardwareError(f"cannot read the terminal's serial number from {path}")
    if not SERIAL_PATTERN.match(serial):
        raise HardwareError(f"the serial number in {path} ({serial!r}) is not usable")
    return serial


def read_model(hardware_dir: Path | None) -> str:
    return _read_text((hardware_dir or DEVICE_TREE) / "model") or "unknown"


def read_active_version(slots_dir: Path) -> int:
    manifest = Path(slots_dir) / "active" / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
    except OSError as exc:
        raise HardwareError(
            f"no active firmware slot: cannot read {manifest} ({exc.strerror})"
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HardwareError(f"the active slot's manifest {manifest} is not JSON ({exc})") from exc
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, int) or not 19700101 <= version <= 99991231:
        raise HardwareError(f"the active slot's manifest {manifest} has no YYYYMMDD version")
    return version


def read_facts(hardware_dir: Path | None, slots_dir: Path) -> TerminalFacts:
    return TerminalFacts(
        serial=read_serial(hardware_dir),
        model=read_model(hardware_dir),
        version=read_active_version(slots_dir),
        slot_hardware=read_slot_hardware(slots_dir),
    )


def read_slot_hardware(slots_dir: Path) -> str | None:
    try:
        data = json.loads((Path(slots_dir) / "active" / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    hardware = data.get("hardware") if isinstance(data, dict) else None
    return hardware if isinstance(hardware, str) and len(hardware) <= 32 else None


def active_slot(slots_dir: Path | None) -> str | None:
    """The name of the active firmware slot (directory backend: `active` -> a|b)."""
    if slots_dir is None:
        return None
    try:
        return Path(os.readlink(Path(slots_dir) / "active")).name
    except OSError:
        return None
