"""The slot backend protocol and the slots directory layout every backend keeps.

The agent reads the running version from SLOTS_DIR/active/manifest.json (agent/hardware.py), so
both backends keep this layout in the slots directory, whatever holds the slot's content:

    SLOTS_DIR/a/manifest.json   {"version": 20240115, "hardware": "rpi4", ...}
    SLOTS_DIR/b/manifest.json   present only while slot b holds a complete, verified install
    SLOTS_DIR/active -> a       the slot the terminal is running now
    SLOTS_DIR/updater.json      optional backend configuration (absent: directory backend)
    SLOTS_DIR/updater/          the install journal (journal.py)

A slot's manifest.json is written by the installer last, after every payload chunk verified and
the content was fsynced; deleting it is the first thing an install does to a slot. So "has a
manifest" means "holds a complete install", and a slot without one is never made bootable.

Boot model (both backends mirror the Raspberry Pi bootloader's): a *committed* (default) slot,
an optional *tryboot* slot, and a one-shot flag that makes the next boot use the tryboot slot.
The booted slot and whether it was a try boot are facts of the current boot (on a Pi: the
device tree), which is what `is_trying()` reports.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol

from batm_common.atomic import atomic_write, fsync_dir
from firmware_updater.errors import SlotError
from firmware_updater.tarstream import MemberSink

SLOTS = ("a", "b")
CONFIG_NAME = "updater.json"


class SlotWriter(MemberSink, Protocol):
    def sync(self) -> dict:
        """Make everything written so far durable; return a token to resume from here."""
        ...

    def complete(self) -> None:
        """Raise PayloadError if the payload lacked something this backend needs."""
        ...

    def close(self) -> None: ...


class SlotBackend(Protocol):
    name: str
    slots_dir: Path

    def active(self) -> str: ...
    def inactive(self) -> str: ...
    def committed(self) -> str: ...
    def slot_manifest(self, slot: str) -> dict | None: ...
    def capacity(self, slot: str) -> int | None: ...
    def prepare(self, slot: str) -> None: ...
    def open_writer(self, slot: str, resume: dict | None) -> SlotWriter: ...
    def write_slot_manifest(self, slot: str, manifest: dict) -> None: ...
    def mark_tried(self, slot: str) -> None: ...
    def boot_tried(self) -> None: ...
    def try_pending(self) -> bool: ...
    def on_boot(self) -> None: ...
    def is_trying(self) -> bool: ...
    def commit(self, slot: str) -> None: ...
    def rollback(self) -> None: ...
    def discard(self, slot: str) -> None: ...
    def status(self) -> dict: ...


def write_all(fd: int, data: memoryview) -> int:
    """os.write until every byte is out (a short write is legal); returns the count."""
    total = 0
    while data:
        n = os.write(fd, data)
        data = data[n:]
        total += n
    return total


def other(slot: str) -> str:
    return "b" if slot == "a" else "a"


class SlotsLayout:
    """The shared SLOTS_DIR metadata: slot manifests and the `active` symlink."""

    def __init__(self, slots_dir: Path | str) -> None:
        self.slots_dir = Path(slots_dir)

    def active(self) -> str:
        link = self.slots_dir / "active"
        try:
            target = os.readlink(link)
        except OSError as exc:
            raise SlotError(f"no active slot: {link} is not a symlink to a or b") from exc
        if target.rstrip("/") not in SLOTS:
            raise SlotError(f"{link} points to {target!r}, not to a or b")
        return target.rstrip("/")

    def inactive(self) -> str:
        return other(self.active())

    def slot_manifest(self, slot: str) -> dict | None:
        try:
            data = json.loads((self.slots_dir / slot / "manifest.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or type(data.get("version")) is not int:
            return None
        return data

    def write_slot_manifest(self, slot: str, manifest: dict) -> None:
        (self.slots_dir / slot).mkdir(exist_ok=True)
        atomic_write(self.slots_dir / slot / "manifest.json",
                     (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(), mode=0o644)

    def forget_slot_manifest(self, slot: str) -> None:
        path = self.slots_dir / slot / "manifest.json"
        if path.exists():
            path.unlink()
            fsync_dir(path.parent)

    def switch_active(self, slot: str) -> None:
        """Point `active` at `slot` atomically: a new symlink renamed over the old one."""
        link = self.slots_dir / "active"
        try:
            if os.readlink(link) == slot:
                return
        except OSError:
            pass
        tmp = self.slots_dir / f".active.tmp-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(slot, tmp)
        os.replace(tmp, link)
        fsync_dir(self.slots_dir)

    def slots_status(self) -> dict:
        return {slot: self.slot_manifest(slot) for slot in SLOTS}


def load_config(slots_dir: Path | str) -> dict:
    """SLOTS_DIR/updater.json, or {} (the directory backend, no hooks)."""
    slots_dir = Path(slots_dir)
    if not slots_dir.is_dir():
        raise SlotError(f"slots directory {slots_dir} does not exist")
    config_path = slots_dir / CONFIG_NAME
    if not config_path.exists():
        return {}
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise SlotError(f"{config_path} is not readable JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise SlotError(f"{config_path} must hold a JSON object")
    return config


def config_command(config: dict, key: str, where: Path) -> list[str] | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise SlotError(f"{where}: {key} must be a list of strings (argv)")
    return value
