"""Raspberry Pi slot backend: two boot partitions switched by the bootloader's tryboot A/B.

The layout follows the Pi firmware's documented A/B scheme: a small FAT "autoboot" partition
holds autoboot.txt, and the bootloader boots `boot_partition` from [all], or - only for the one
boot after `reboot "0 tryboot"` - the one from [tryboot]:

    [all]
    tryboot_a_b=1
    boot_partition=2
    [tryboot]
    boot_partition=3

The device tree tells the running system which partition it booted from and whether that was a
try boot (<dt>/chosen/bootloader/partition and .../tryboot, big-endian 32-bit integers). A
commit rewrites autoboot.txt (atomically) so the tried partition becomes the default - only when
the tryboot flag is set, i.e. when the running system really is the tried one. A failed try
needs no action at all: the next boot, whatever causes it, is a default boot.

The payload for this backend is a tar holding one member, `partition.img`: a raw image of the
boot partition (FAT: kernel, initramfs, cmdline.txt), streamed onto the partition device. The
slots directory still holds a/manifest.json, b/manifest.json and `active` for the agent.

SLOTS_DIR/updater.json: {"backend": "rpi",
  "partitions": {"a": {"number": 2, "device": "/dev/mmcblk0p2"},
                 "b": {"number": 3, "device": "/dev/mmcblk0p3"}},
  "autoboot": "/boot/autoboot/autoboot.txt", "device_tree": "/proc/device-tree",
  "reboot_command": ["reboot"]}
In tests the devices are plain image files and the device tree a directory.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from batm_common.atomic import atomic_write
from firmware_updater.errors import PayloadError, SlotError
from firmware_updater.slots import (
    CONFIG_NAME,
    SLOTS,
    SlotsLayout,
    config_command,
    other,
    write_all,
)

IMAGE_MEMBER = "partition.img"
TRYBOOT_ARG = "0 tryboot"


def render_autoboot(default: int, tryboot: int) -> bytes:
    return (f"[all]\ntryboot_a_b=1\nboot_partition={default}\n"
            f"[tryboot]\nboot_partition={tryboot}\n").encode()


def parse_autoboot(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {"all": {}}
    current = sections["all"]
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), {})
        elif "=" in line:
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
    return sections


class RawImageWriter:
    """Streams the one `partition.img` member onto the partition device, in place."""

    def __init__(self, device: Path, capacity: int, resume: dict | None) -> None:
        self.device, self.capacity = device, capacity
        self.fd: int | None = None
        self.written = 0
        self.done = bool(resume and resume.get("done"))
        if resume and resume.get("file"):
            self._open()
            self.written = resume["written"]
            os.lseek(self.fd, self.written, os.SEEK_SET)

    def _open(self) -> None:
        try:
            self.fd = os.open(self.device, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise SlotError(f"cannot open partition {self.device} ({exc.strerror})") from exc

    def directory(self, path: str, mode: int) -> None:
        raise PayloadError(f"archive member {path!r} is a directory; the Raspberry Pi backend "
                           f"installs one partition image, {IMAGE_MEMBER}")

    def begin_file(self, path: str, mode: int, size: int) -> None:
        if path != IMAGE_MEMBER or self.done:
            raise PayloadError(f"archive member {path!r}: the Raspberry Pi backend installs "
                               f"exactly one member, {IMAGE_MEMBER}")
        if size > self.capacity:
            raise PayloadError(f"oversize: {IMAGE_MEMBER} is {size} bytes, the partition "
                               f"{self.device} holds {self.capacity}")
        self._open()
        self.written = 0

    def write(self, data: memoryview) -> None:
        self.written += write_all(self.fd, data)

    def end_file(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd, self.done = None, True

    def sync(self) -> dict:
        if self.fd is not None:
            os.fsync(self.fd)
        return {"file": IMAGE_MEMBER if self.fd is not None else None,
                "written": self.written, "done": self.done}

    def complete(self) -> None:
        if not self.done:
            raise PayloadError(f"the payload holds no {IMAGE_MEMBER}")

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class RaspberryPiBackend(SlotsLayout):
    name = "rpi"

    def __init__(self, slots_dir: Path, config: dict) -> None:
        super().__init__(slots_dir)
        where = self.slots_dir / CONFIG_NAME
        parts = config.get("partitions")
        try:
            self.partitions = {s: int(parts[s]["number"]) for s in SLOTS}
            self.devices = {s: Path(parts[s]["device"]) for s in SLOTS}
        except (TypeError, KeyError, ValueError) as exc:
            raise SlotError(f"{where}: partitions must map a and b to "
                            "{number, device}") from exc
        if "autoboot" not in config:
            raise SlotError(f"{where}: autoboot (the path of autoboot.txt) is missing")
        self.autoboot = Path(config["autoboot"])
        self.device_tree = Path(config.get("device_tree", "/proc/device-tree"))
        self.reboot_command = config_command(config, "reboot_command", where) or ["reboot"]

    def _slot_of(self, number: int) -> str:
        for slot, n in self.partitions.items():
            if n == number:
                return slot
        raise SlotError(f"partition {number} is neither slot a ({self.partitions['a']}) "
                        f"nor slot b ({self.partitions['b']})")

    def _dt_int(self, name: str) -> int | None:
        try:
            raw = (self.device_tree / "chosen" / "bootloader" / name).read_bytes()
        except OSError:
            return None
        return int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None

    def _autoboot(self) -> tuple[int, int | None]:
        try:
            sections = parse_autoboot(self.autoboot.read_text())
        except FileNotFoundError:
            return self.partitions[self._booted_slot_or_a()], None
        except (OSError, UnicodeDecodeError) as exc:
            raise SlotError(f"cannot read {self.autoboot} ({exc})") from exc
        try:
            default = int(sections["all"]["boot_partition"])
            tryboot = sections.get("tryboot", {}).get("boot_partition")
            return default, (int(tryboot) if tryboot else None)
        except (KeyError, ValueError) as exc:
            raise SlotError(f"{self.autoboot} has no usable boot_partition") from exc

    def _write_autoboot(self, default: int, tryboot: int) -> None:
        atomic_write(self.autoboot, render_autoboot(default, tryboot), mode=0o644)

    def _booted_slot_or_a(self) -> str:
        number = self._dt_int("partition")
        return self._slot_of(number) if number is not None else "a"

    def active(self) -> str:
        number = self._dt_int("partition")
        if number is None:
            raise SlotError(f"{self.device_tree}/chosen/bootloader/partition is missing")
        return self._slot_of(number)

    def inactive(self) -> str:
        return other(self.active())

    def committed(self) -> str:
        return self._slot_of(self._autoboot()[0])

    def capacity(self, slot: str) -> int | None:
        try:
            fd = os.open(self.devices[slot], os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise SlotError(f"cannot open partition {self.devices[slot]} ({exc.strerror})") from exc
        try:
            return os.lseek(fd, 0, os.SEEK_END)
        finally:
            os.close(fd)

    def _check_writable(self, slot: str) -> None:
        if slot in (self.active(), self.committed()):
            raise SlotError(f"slot {slot} is running or committed; it cannot be overwritten")

    def prepare(self, slot: str) -> None:
        self._check_writable(slot)
        self.forget_slot_manifest(slot)

    def open_writer(self, slot: str, resume: dict | None) -> RawImageWriter:
        self._check_writable(slot)
        return RawImageWriter(self.devices[slot], self.capacity(slot), resume)

    def mark_tried(self, slot: str) -> None:
        default, tryboot = self._autoboot()
        if tryboot != self.partitions[slot] or not self.autoboot.exists():
            self._write_autoboot(default, self.partitions[slot])

    def boot_tried(self) -> None:
        self._run([*self.reboot_command, TRYBOOT_ARG])

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(argv, check=False)
        if done.returncode:
            raise SlotError(f"reboot command {argv} failed (exit {done.returncode})")

    def try_pending(self) -> bool:
        return False  # the one-shot flag lives in the bootloader; nothing to observe

    def on_boot(self) -> None:
        self.switch_active(self.active())

    def is_trying(self) -> bool:
        _default, tryboot = self._autoboot()
        return bool(self._dt_int("tryboot")) and self._dt_int("partition") == tryboot

    def commit(self, slot: str) -> None:
        default, _tryboot = self._autoboot()
        if default != self.partitions[slot]:
            if not self._dt_int("tryboot") or self.active() != slot:
                raise SlotError(f"slot {slot} was not started by a try boot; nothing to commit")
            self._write_autoboot(self.partitions[slot], self.partitions[other(slot)])
        self.switch_active(self.active())

    def rollback(self) -> None:
        if self.is_trying():
            self._run(self.reboot_command)  # a plain reboot boots the default partition

    def discard(self, slot: str) -> None:
        """Nothing to undo: a [tryboot] entry is inert without the one-shot reboot flag."""

    def status(self) -> dict:
        default, tryboot = self._autoboot()
        return {"backend": self.name, "slots": self.slots_status(), "active": self.active(),
                "committed": self._slot_of(default),
                "tried": self._slot_of(tryboot) if tryboot else None,
                "trying": self.is_trying(), "partitions": self.partitions,
                "autoboot": str(self.autoboot), "inactive": self.inactive()}
