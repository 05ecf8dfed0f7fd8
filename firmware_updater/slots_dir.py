"""Directory slot backend: slots are SLOTS_DIR/a and SLOTS_DIR/b, `active` a symlink to one.

Used by the simulator and for application-level installs. "Booting" is the application start:
`batm-firmware resume` runs before the agent (systemd ExecStartPre) and plays the bootloader's
part, following SLOTS_DIR/boot.json the way the Pi's bootloader follows autoboot.txt:

    {"default": "a", "tryboot": "b", "tryboot_once": false, "booted": "a",
     "booted_by_tryboot": false}

`boot_tried()` sets the one-shot `tryboot_once` flag (Pi: `reboot "0 tryboot"`) and runs the
configured restart command; the next `on_boot()` consumes the flag *before* switching `active`
to the tryboot slot, so a second start without a commit comes back to the default slot. The
switch itself is a new symlink renamed over `active`, then an fsync of the directory.

SLOTS_DIR/updater.json (optional): {"backend": "dir", "restart_command": ["systemctl",
"restart", "batm-agent"], "max_slot_bytes": 1073741824}.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

from batm_common.atomic import atomic_write, fsync_dir
from firmware_updater.errors import PayloadError, SlotError
from firmware_updater.slots import (
    CONFIG_NAME,
    SLOTS,
    SlotsLayout,
    config_command,
    other,
    write_all,
)

OPEN_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class DirectoryWriter:
    """Writes tar members under one slot directory; `sync()` makes them durable."""

    def __init__(self, root: Path, resume: dict | None) -> None:
        self.root = root
        self.fd: int | None = None
        self.file: str | None = None
        self.written = 0
        self.unsynced: list[str] = []  # files closed since the last sync
        self.dirs: set[str] = {""}
        self.known_dirs: set[str] = {""}
        if resume and resume.get("file"):
            self.file, self.written = resume["file"], resume["written"]
            self.fd = os.open(self._full(self.file), OPEN_FLAGS)
            os.ftruncate(self.fd, self.written)  # drop whatever followed the checkpoint
            os.lseek(self.fd, self.written, os.SEEK_SET)

    def _full(self, rel: str) -> Path:
        return self.root / rel

    def _ensure_dir(self, rel: str, mode: int = 0o755) -> None:
        if rel in self.known_dirs:
            return
        parent = rel.rpartition("/")[0]
        self._ensure_dir(parent)
        path = self._full(rel)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, mode)
        st = os.lstat(path)  # the slot holds no symlinks, but never follow one if it did
        if not stat.S_ISDIR(st.st_mode):
            raise PayloadError(f"archive member {rel!r} is a directory but a file has that name")
        self.known_dirs.add(rel)
        self.dirs.add(parent)

    def directory(self, path: str, mode: int) -> None:
        self._ensure_dir(path)
        os.chmod(self._full(path), mode | 0o700, follow_symlinks=False)
        self.dirs.add(path)

    def begin_file(self, path: str, mode: int, size: int) -> None:
        parent = path.rpartition("/")[0]
        self._ensure_dir(parent)
        try:
            self.fd = os.open(self._full(path), OPEN_FLAGS | os.O_CREAT | os.O_TRUNC, 0o600)
        except IsADirectoryError as exc:
            raise PayloadError(f"archive member {path!r} is a file but a directory has "
                               "that name") from exc
        os.fchmod(self.fd, mode)
        self.file, self.written = path, 0
        self.dirs.add(parent)

    def write(self, data: memoryview) -> None:
        self.written += write_all(self.fd, data)

    def end_file(self) -> None:
        os.close(self.fd)
        self.unsynced.append(self.file)
        self.fd, self.file, self.written = None, None, 0

    def sync(self) -> dict:
        if self.fd is not None:
            os.fsync(self.fd)
        for rel in self.unsynced:
            fd = os.open(self._full(rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for rel in sorted(self.dirs, key=len, reverse=True):
            fsync_dir(self._full(rel))
        fsync_dir(self.root.parent)
        self.unsynced, self.dirs = [], set()
        return {"file": self.file, "written": self.written}

    def complete(self) -> None:
        """Any tree of files and directories is a complete directory slot."""

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


class DirectoryBackend(SlotsLayout):
    name = "dir"

    def __init__(self, slots_dir: Path, config: dict) -> None:
        super().__init__(slots_dir)
        where = self.slots_dir / CONFIG_NAME
        self.restart_command = config_command(config, "restart_command", where)
        self.max_slot_bytes = config.get("max_slot_bytes")
        if self.max_slot_bytes is not None and type(self.max_slot_bytes) is not int:
            raise SlotError(f"{where}: max_slot_bytes must be an integer")
        self.boot_path = self.slots_dir / "boot.json"

    # -- boot state (the "bootloader" of the directory backend) --------------------------------
    def _boot(self) -> dict:
        try:
            data = json.loads(self.boot_path.read_text())
            if isinstance(data, dict) and data.get("default") in SLOTS:
                return data
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            raise SlotError(f"{self.boot_path} is unreadable ({exc})") from exc
        active = self.active()  # the simulator's layout: just `active -> a`
        return {"default": active, "tryboot": None, "tryboot_once": False, "booted": active,
                "booted_by_tryboot": False}

    def _save_boot(self, boot: dict) -> None:
        atomic_write(self.boot_path, (json.dumps(boot, sort_keys=True) + "\n").encode(), 0o644)

    def committed(self) -> str:
        return self._boot()["default"]

    def capacity(self, slot: str) -> int | None:
        free = shutil.disk_usage(self.slots_dir).free + _tree_size(self.slots_dir / slot)
        return min(free, self.max_slot_bytes) if self.max_slot_bytes else free

    def _check_writable(self, slot: str) -> None:
        if slot not in SLOTS:
            raise SlotError(f"no slot named {slot!r}")
        if slot in (self.active(), self.committed()):
            raise SlotError(f"slot {slot} is running or committed; it cannot be overwritten")

    def prepare(self, slot: str) -> None:
        self._check_writable(slot)
        self.discard(slot)
        self.forget_slot_manifest(slot)
        path = self.slots_dir / slot
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
        path.mkdir(mode=0o755)
        fsync_dir(self.slots_dir)

    def open_writer(self, slot: str, resume: dict | None) -> DirectoryWriter:
        self._check_writable(slot)
        return DirectoryWriter(self.slots_dir / slot, resume)

    def mark_tried(self, slot: str) -> None:
        boot = self._boot()
        if boot["tryboot"] != slot or boot["tryboot_once"]:
            self._save_boot(boot | {"tryboot": slot, "tryboot_once": False})

    def boot_tried(self) -> None:
        boot = self._boot()
        if not boot["tryboot"]:
            raise SlotError("no slot is marked to be tried")
        self._save_boot(boot | {"tryboot_once": True})
        self._restart()

    def _restart(self) -> None:
        if self.restart_command:
            done = subprocess.run(self.restart_command, check=False)
            if done.returncode:
                raise SlotError(f"restart command {self.restart_command} failed "
                                f"(exit {done.returncode})")

    def try_pending(self) -> bool:
        return bool(self._boot()["tryboot_once"])

    def on_boot(self) -> None:
        boot = self._boot()
        slot = boot["tryboot"]
        if boot["tryboot_once"] and slot in SLOTS and self.slot_manifest(slot):
            boot |= {"tryboot_once": False, "booted": slot, "booted_by_tryboot": True}
        else:
            boot |= {"tryboot_once": False, "booted": boot["default"],
                     "booted_by_tryboot": False}
        self._save_boot(boot)  # the one-shot flag is consumed before the switch
        self.switch_active(boot["booted"])

    def is_trying(self) -> bool:
        boot = self._boot()
        return (boot["booted_by_tryboot"] and boot["booted"] == boot["tryboot"]
                and self.active() == boot["booted"])

    def commit(self, slot: str) -> None:
        boot = self._boot()
        if boot["default"] == slot and not boot["booted_by_tryboot"]:
            return  # already committed
        if not self.is_trying() or boot["booted"] != slot:
            raise SlotError(f"slot {slot} is not being tried; nothing to commit")
        self._save_boot(boot | {"default": slot, "tryboot": None, "booted_by_tryboot": False})

    def rollback(self) -> None:
        boot = self._boot()
        was_running = self.active()
        self._save_boot(boot | {"tryboot": None, "tryboot_once": False,
                                "booted": boot["default"], "booted_by_tryboot": False})
        self.switch_active(boot["default"])
        if was_running != boot["default"]:
            self._restart()

    def discard(self, slot: str) -> None:
        boot = self._boot()
        if boot["tryboot"] == slot and not boot["booted_by_tryboot"]:
            self._save_boot(boot | {"tryboot": None, "tryboot_once": False})

    def status(self) -> dict:
        boot = self._boot()
        return {"backend": self.name, "slots": self.slots_status(), "active": self.active(),
                "committed": boot["default"], "tried": boot["tryboot"],
                "trying": self.is_trying(), "tryboot_pending": boot["tryboot_once"],
                "inactive": other(self.active())}
