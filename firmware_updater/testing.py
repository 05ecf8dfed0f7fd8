"""Helpers for the updater's tests and benchmark: slot layouts, keys, bundles, hostile tars.

Like sim/testsupport.py this lives in the package so tests, the bench and a HIL rig share it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from batm_common.signing import b64url
from firmware_updater.bundle import Header, build
from firmware_updater.manifest import Manifest, VersionRange, utc_now
from firmware_updater.trust import public_raw, sign_manifest

OLD, NEW = 20230801, 20240115
HARDWARE = "rpi4"


def make_slots(slots: Path, version: int = OLD, hardware: str = HARDWARE) -> Path:
    """The simulator's layout: a/manifest.json and active -> a."""
    (slots / "a").mkdir(parents=True)
    (slots / "a" / "manifest.json").write_text(
        json.dumps({"version": version, "hardware": hardware}) + "\n")
    (slots / "a" / "app.py").write_text(f"VERSION = {version}\n")
    os.symlink("a", slots / "active")
    return slots


def make_key(directory: Path, name: str, trusted: bool = True) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    (directory / "trusted").mkdir(parents=True, exist_ok=True)
    if trusted:
        (directory / "trusted" / f"{name}.pub").write_text(
            b64url(public_raw(key.public_key())) + "\n")
    return key


def make_tree(src: Path, version: int = NEW, big: int = 200_000) -> Path:
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "agent").write_text("#!/bin/sh\necho agent\n")
    os.chmod(src / "bin" / "agent", 0o755)
    (src / "app.py").write_text(f"VERSION = {version}\n")
    (src / "data").mkdir()
    (src / "data" / "blob.bin").write_bytes(hashlib.sha256(b"x").digest() * (big // 32))
    (src / "data" / "empty").write_bytes(b"")
    return src


def make_rig(tmp: Path) -> tuple[Path, Path, Ed25519PrivateKey, Path]:
    """(tmp, slots at OLD, a trusted release key, a source tree at NEW): what install tests start
    from."""
    return tmp, make_slots(tmp / "slots"), make_key(tmp, "release"), make_tree(tmp / "src")


def make_bundle(path: Path, src: Path, keys: list[Ed25519PrivateKey], version: int = NEW,
                hardware: tuple[str, ...] = (HARDWARE,), install_from: str = f"{OLD}-",
                chunk_size: int | None = 4096) -> Manifest:
    manifest = build(src, path, version, list(hardware), [VersionRange.parse(install_from)],
                     chunk_size=chunk_size)
    if keys:
        resign(path, keys)
    return manifest


def resign(path: Path, keys: list[Ed25519PrivateKey]) -> None:
    from firmware_updater.bundle import add_signature

    for key in keys:
        add_signature(path, key)


def assemble(path: Path, payload: bytes, keys: list[Ed25519PrivateKey], version: int = NEW,
             hardware: tuple[str, ...] = (HARDWARE,), install_from: str = f"{OLD}-",
             chunk_size: int = 4096, payload_size: int | None = None) -> Manifest:
    """A bundle around arbitrary payload bytes (hostile tars); signed as a real signer would."""
    size = len(payload) if payload_size is None else payload_size
    padded = payload.ljust(size, b"\0")[:size]
    chunks = tuple(hashlib.sha256(padded[i:i + chunk_size]).hexdigest()
                   for i in range(0, size, chunk_size))
    manifest = Manifest(version=version, hardware=hardware,
                        install_from=(VersionRange.parse(install_from),), payload_size=size,
                        payload_sha256=hashlib.sha256(padded).hexdigest(),
                        chunk_size=chunk_size, chunk_sha256=chunks, created=utc_now())
    raw = manifest.canonical_bytes()
    header = Header(raw, tuple(sign_manifest(k, raw) for k in keys))
    path.write_bytes(header.encode() + payload)
    return manifest


def hostile_tar(kind: str) -> bytes:
    """A pax tar with one refused member after a harmless one."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        ok = tarfile.TarInfo("ok.txt")
        ok.size = 3
        tar.addfile(ok, io.BytesIO(b"ok\n"))
        info = tarfile.TarInfo({"dotdot": "../escape.txt", "nested": "x/../../escape.txt",
                                "absolute": "/tmp/escape.txt"}.get(kind, "member"))
        data = b""
        if kind in ("dotdot", "nested", "absolute"):
            data = b"pwned\n"
        elif kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, "ok.txt"
        elif kind == "chardev":
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        elif kind == "blockdev":
            info.type, info.devmajor, info.devminor = tarfile.BLKTYPE, 8, 0
        elif kind == "fifo":
            info.type = tarfile.FIFOTYPE
        elif kind == "manifest":
            info.name, data = "manifest.json", b'{"version": 99991231}'
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def snapshot(slots: Path) -> dict:
    """Everything a refusal must leave alone: the active slot's files and the boot state."""
    active = os.readlink(slots / "active")
    files = {str(p.relative_to(slots)): p.read_bytes()
             for p in sorted((slots / active).rglob("*")) if p.is_file()}
    boot = (slots / "boot.json").read_text() if (slots / "boot.json").exists() else None
    return {"active": active, "files": files, "boot": boot}


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "firmware_updater.cli", *args]


FAKE_REBOOT = """#!{python}
# Stands in for `reboot`: records the call, then plays the Pi bootloader for the next boot by
# writing the device tree it would produce (a try boot only for "0 tryboot").
import sys
from pathlib import Path
from firmware_updater.slots_rpi import parse_autoboot
with open({log!r}, "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
section = "tryboot" if sys.argv[1:] == ["0 tryboot"] else "all"
part = int(parse_autoboot(Path({autoboot!r}).read_text())[section]["boot_partition"])
Path({dt!r}, "partition").write_bytes(part.to_bytes(4, "big"))
Path({dt!r}, "tryboot").write_bytes(int(section == "tryboot").to_bytes(4, "big"))
"""


def make_rpi_rig(root: Path, version: int = OLD, partition_bytes: int = 1 << 20) -> Path:
    """Slots dir with updater.json for the Pi backend: image files as partitions 2 and 3, a
    directory as the autoboot partition, a fake device tree booted from partition 2."""
    slots = root / "slots"
    (slots / "a").mkdir(parents=True)
    (slots / "a" / "manifest.json").write_text(
        json.dumps({"version": version, "hardware": HARDWARE}) + "\n")
    os.symlink("a", slots / "active")
    for number in (2, 3):
        (root / f"p{number}.img").write_bytes(bytes(partition_bytes))
    (root / "autoboot").mkdir()
    (root / "autoboot" / "autoboot.txt").write_text(
        "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n")
    dt = root / "dt" / "chosen" / "bootloader"
    dt.mkdir(parents=True)
    set_boot(root, partition=2, tryboot=False)
    script = root / "fake-reboot"
    script.write_text(FAKE_REBOOT.format(
        python=sys.executable, log=str(root / "reboots.log"),
        autoboot=str(root / "autoboot" / "autoboot.txt"), dt=str(dt)))
    script.chmod(0o755)
    (slots / "updater.json").write_text(json.dumps({
        "backend": "rpi",
        "partitions": {"a": {"number": 2, "device": str(root / "p2.img")},
                       "b": {"number": 3, "device": str(root / "p3.img")}},
        "autoboot": str(root / "autoboot" / "autoboot.txt"),
        "device_tree": str(root / "dt"),
        "reboot_command": [str(script)],
    }))
    return slots


def set_boot(root: Path, partition: int, tryboot: bool) -> None:
    dt = root / "dt" / "chosen" / "bootloader"
    (dt / "partition").write_bytes(partition.to_bytes(4, "big"))
    (dt / "tryboot").write_bytes(int(tryboot).to_bytes(4, "big"))


def power_cycle(root: Path) -> None:
    """A power cut: the next boot is a plain boot of autoboot.txt's default partition."""
    text = (root / "autoboot" / "autoboot.txt").read_text()
    default = int(text.split("[tryboot]")[0].split("boot_partition=")[1].split()[0])
    set_boot(root, default, tryboot=False)


def make_image_tree(src: Path, size: int = 300_000, seed: bytes = b"image") -> Path:
    src.mkdir(parents=True)
    block = hashlib.sha256(seed).digest()
    (src / "partition.img").write_bytes((block * (size // 32 + 1))[:size])
    return src
