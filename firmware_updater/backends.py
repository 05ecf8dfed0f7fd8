"""Which slot backend a slots directory uses: SLOTS_DIR/updater.json names it (default "dir").

Apart from firmware_updater/slots.py so that the protocol module does not import its own
implementations (slots_dir and slots_rpi build on slots).
"""

from __future__ import annotations

from pathlib import Path

from firmware_updater.errors import SlotError
from firmware_updater.slots import CONFIG_NAME, SlotBackend, load_config
from firmware_updater.slots_dir import DirectoryBackend
from firmware_updater.slots_rpi import RaspberryPiBackend


def load_backend(slots_dir: Path | str, config: dict | None = None) -> SlotBackend:
    """The backend named by SLOTS_DIR/updater.json, or the directory backend."""
    config = load_config(slots_dir) if config is None else config
    kind = config.get("backend", "dir")
    if kind == "dir":
        return DirectoryBackend(Path(slots_dir), config)
    if kind == "rpi":
        return RaspberryPiBackend(Path(slots_dir), config)
    raise SlotError(f"{Path(slots_dir) / CONFIG_NAME}: backend {kind!r} is not 'dir' or 'rpi'")
