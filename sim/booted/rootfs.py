"""The terminal's rootfs: Debian bookworm (minbase) + systemd + the batm-terminal package.

Built once per package content with mmdebstrap (~80 s, the packages from Debian's mirror, the
.deb installed by `apt-get install ./batm-terminal_….deb` exactly as a technician would) and
cached outside the clone, in $BATM_CACHE_DIR or ~/.cache/batm/booted/rootfs-<key>/, where key
hashes the .deb and the provisioning below. Machines boot an overlay on it and never write it.

The provisioning adds only what a Pi has and a container lacks, and says so in each file:
a hardware serial number, a console on /dev/console instead of a UART, no KMS display.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

SUITE = "bookworm"
# What a Raspberry Pi OS Lite image has that minbase lacks and the package does not pull in.
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "iproute2", "iputils-ping", "procps")
SERIAL = "BOOTED0001"
HARDWARE_DIR = "/etc/batm/hardware"

# Files written into the rootfs after the package, path → content.
PROVISION: dict[str, str] = {
    # The agent reads its serial number from the device tree on a Pi; a container has none.
    f"{HARDWARE_DIR}/serial-number": SERIAL + "\n",
    f"{HARDWARE_DIR}/model": "BATM booted rig (systemd-nspawn)\n",
    "/etc/systemd/system/batm-agent.service.d/rig.conf": (
        "# Rig only: the container has no /proc/device-tree.\n"
        "[Service]\n"
        f"Environment=BATM_HARDWARE_DIR={HARDWARE_DIR}\n"
        # A short watchdog so the hung-agent test takes seconds, not the unit's 30 s.
        "WatchdogSec=5s\n"
    ),
    # systemd's status lines and boot messages would share the console line with batm-console.
    "/etc/systemd/system.conf.d/rig.conf": "[Manager]\nShowStatus=no\nLogTarget=journal\n",
}
# A container has no udev, so dev-console.device never appears: the rig's console unit is the
# packaged one without the device binding, on /dev/console, which nspawn makes a pty we relay.
CONSOLE_UNIT = "/etc/systemd/system/batm-console@.service"
CONSOLE_INSTANCE = "console"
MASKED = ("batm-display.service", "console-getty.service", "getty@tty1.service",
          "systemd-networkd-wait-online.service")


class RootfsError(RuntimeError):
    """The rootfs could not be built; str() says which step and what to install or read."""


def cache_root() -> Path:
    return Path(os.environ.get("BATM_CACHE_DIR") or Path.home() / ".cache" / "batm" / "booted")


def content_key(deb: Path) -> str:
    """Hash of what the package installs (names, modes, link targets, contents; not mtimes, so
    rebuilding an unchanged tree reuses the cache) and of the provisioning below."""
    digest = hashlib.sha256()
    for part in ("--ctrl-tarfile", "--fsys-tarfile"):
        with subprocess.Popen(["dpkg-deb", part, str(deb)], stdout=subprocess.PIPE) as proc:
            assert proc.stdout is not None
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    digest.update(f"{member.name}\0{member.mode}\0{member.linkname}\0".encode())
                    if member.isfile():
                        data = tar.extractfile(member)
                        assert data is not None
                        digest.update(hashlib.sha256(data.read()).digest())
        if proc.returncode != 0:
            raise RootfsError(f"{deb} is not a Debian package (dpkg-deb {part} failed)")
    digest.update(Path(__file__).read_bytes())  # a change of provisioning is a new rootfs
    return digest.hexdigest()[:16]


def ensure_rootfs(deb: Path, log: Path) -> tuple[Path, bool]:
    """The cached rootfs for `deb`, built if absent; (path, True when it was built now)."""
    deb = Path(deb).resolve()
    if not deb.is_file():
        raise RootfsError(f"no package at {deb}: run `make packages` first")
    if shutil.which("mmdebstrap") is None:
        raise RootfsError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    root = cache_root() / f"rootfs-{content_key(deb)}"
    if (root / "etc" / "batm-rig-built").exists():
        return root, False
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    build(deb, partial, log)
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    prune(keep=root)
    return root, True


def prune(keep: Path, spare: int = 1) -> None:
    """Old rootfs versions go, newest first kept: each is ~400 MB."""
    others = sorted((p for p in keep.parent.glob("rootfs-*") if p != keep and p.is_dir()),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    for old in others[spare:]:
        shutil.rmtree(old, ignore_errors=True)


def build(deb: Path, target: Path, log: Path) -> None:
    hooks = [
        f'--customize-hook=copy-in {deb} /tmp',
        "--customize-hook=chroot \"$1\" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q"
        f" --no-install-recommends /tmp/{deb.name}",
        f'--customize-hook=rm -f "$1/tmp/{deb.name}"',
    ]
    command = ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=directory",
               "--include=" + ",".join(BASE_PACKAGES), *hooks, SUITE, str(target)]
    with open(log, "ab") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RootfsError(f"mmdebstrap failed (exit {done.returncode}); see {log}")
    provision(target)


def provision(root: Path) -> None:
    for path, content in PROVISION.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    packaged = (root / "lib/systemd/system/batm-console@.service").read_text()
    console = "".join(
        line for line in packaged.splitlines(keepends=True)
        if not line.startswith(("BindsTo=dev-", "After=dev-"))
    ).replace(
        "[Service]\n",
        "[Service]\n# Rig only: nspawn's /dev/console is root's 0600 pty; open it to the unit.\n"
        "ExecStartPre=+/bin/chmod 0660 /dev/%I\nExecStartPre=+/bin/chgrp dialout /dev/%I\n",
    )
    (root / CONSOLE_UNIT.lstrip("/")).write_text(console)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    for link in wants.glob("batm-console@*.service"):
        link.unlink()
    (wants / f"batm-console@{CONSOLE_INSTANCE}.service").symlink_to(CONSOLE_UNIT)
    for unit in MASKED:
        mask = root / "etc/systemd/system" / unit
        mask.unlink(missing_ok=True)
        mask.symlink_to("/dev/null")
    (root / "etc/batm-rig-built").write_text("built by sim/booted/rootfs.py\n")
