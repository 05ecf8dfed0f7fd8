"""The terminal's rootfs, in two cached layers: Debian bookworm + the package's dependencies,
and the batm-terminal package installed on top.

    base-<key>/   mmdebstrap --variant=minbase with systemd and every Debian package the .deb
                  depends on (~80 s, from Debian's mirror); key = hash of that package list and
                  of this file's base recipe, so it is rebuilt only when the dependencies change
    pkg-<key>/    an overlay upper layer: `apt-get install ./batm-terminal_….deb` run on the base
                  (exactly as a technician would; every dependency is there already, so apt only
                  unpacks and configures: seconds), then the rig's provisioning; key = hash of
                  what the .deb installs, of this file and of the base

Both live outside the clone, in ${BATM_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/batm}/booted/, so
a fresh clone reuses them. Machines boot an overlay (lower = pkg:base) and never write them. The
third-party Python wheels are cached one step earlier, by scripts/build-packages.

The provisioning adds only what a Pi has and a container lacks, and says so in each file:
a hardware serial number, a console on /dev/console instead of a UART, no KMS display.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

SUITE = "bookworm"
# What a Raspberry Pi OS Lite image has that minbase lacks and the package does not pull in.
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "iproute2", "iputils-ping", "procps")
CONTROL = Path(__file__).resolve().parents[2] / "packaging" / "batm-terminal" / "control"
SERIAL = "BOOTED0001"
HARDWARE_DIR = "/etc/batm/hardware"
KEEP_LAYERS = 4  # package layers kept (~80 MB each): other clones and branches share the cache
IN_USE = 3600.0  # a layer used within this many seconds may be under a running rig: kept

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
    base = (os.environ.get("BATM_CACHE_DIR") or
            Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "batm")
    return Path(base) / "booted"


def dependencies(control: Path = CONTROL) -> list[str]:
    """The Debian packages the base layer holds: BASE_PACKAGES and the .deb's Depends (names;
    the versions are bookworm's, which the control file's constraints accept)."""
    text = control.read_text()
    match = re.search(r"^Depends:(.*(?:\n[ \t].*)*)", text, re.MULTILINE)
    if match is None:
        raise RootfsError(f"{control} has no Depends field")
    names = {re.split(r"[\s(:]", alt.strip(), maxsplit=1)[0]
             for field in match.group(1).replace("\n", " ").split(",")
             for alt in field.split("|")[:1] if alt.strip()}
    return sorted(names | set(BASE_PACKAGES))


def base_key(packages: list[str]) -> str:
    recipe = " ".join(_base_command(Path("TARGET"), packages))
    return hashlib.sha256(f"{SUITE}\0{recipe}".encode()).hexdigest()[:16]


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


def ensure_rootfs(deb: Path, log: Path) -> tuple[list[Path], bool]:
    """The cached layers for `deb`, top first (for overlayfs' lowerdir), built where absent;
    (layers, True when something was built now). Parallel callers (test workers) wait for one
    another: the second finds what the first built."""
    deb = Path(deb).resolve()
    if not deb.is_file():
        raise RootfsError(f"no package at {deb}: run `make packages` first")
    if shutil.which("mmdebstrap") is None:
        raise RootfsError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    packages = dependencies()
    with _locked(cache_root()):
        base = cache_root() / f"base-{base_key(packages)}"
        built = False
        if not (base / "etc" / "batm-rig-base").exists():
            _build_into(base, lambda partial: build_base(partial, packages, log))
            _prune("base-*", keep=base, spare=1)
            built = True
        layer = cache_root() / f"pkg-{content_key(deb)}-{base.name[5:13]}"
        if not (layer / "etc" / "batm-rig-built").exists():
            _build_into(layer, lambda partial: install_package(base, deb, partial, log))
            built = True
        layer.touch()  # its last use, for _prune
        _prune("pkg-*", keep=layer, spare=KEEP_LAYERS - 1)
    return [layer, base], built


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build_into(target: Path, build) -> None:
    partial = target.with_name(target.name + ".partial")
    for path in (partial, partial.with_name(partial.name + ".mnt"), target):
        _remove(path)
    build(partial)
    partial.rename(target)


def _remove(path: Path) -> None:
    """A left-over of an interrupted build, mounted or not."""
    if os.path.ismount(path / "root"):
        subprocess.run(["umount", str(path / "root")], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def _prune(pattern: str, keep: Path, spare: int) -> None:
    """Old layers go, the most recently used first kept, and none used within IN_USE seconds
    (another clone's rig may be booted on it). Builds run under the cache's lock, which the
    caller holds: a .partial or .mnt left is an interrupted build's, and goes now."""
    others = sorted((p for p in keep.parent.glob(pattern) if p != keep and p.is_dir()),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    unfinished = [p for p in others if p.name.endswith((".partial", ".mnt"))]
    finished = [p for p in others if p not in unfinished]
    for old in [*finished[spare:], *unfinished]:
        if old in unfinished or time.time() - old.stat().st_mtime > IN_USE:
            _remove(old)


def _base_command(target: Path, packages: list[str]) -> list[str]:
    return ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=directory",
            "--include=" + ",".join(packages), SUITE, str(target)]


def build_base(target: Path, packages: list[str], log: Path) -> None:
    with open(log, "ab") as out:
        done = subprocess.run(_base_command(target, packages), stdout=out,
                              stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RootfsError(f"mmdebstrap failed (exit {done.returncode}); see {log}")
    (target / "etc" / "batm-rig-base").write_text("built by sim/booted/rootfs.py\n")


def install_package(base: Path, deb: Path, target: Path, log: Path) -> None:
    """`apt-get install ./the.deb` in a container on an overlay of `base`; `target` becomes the
    overlay's upper layer: what the install (and the provisioning) changed, nothing else."""
    scratch = target.with_name(target.name + ".mnt")
    _remove(scratch)
    work, root = scratch / "work", scratch / "root"
    for directory in (target, work, root):
        directory.mkdir(parents=True)
    options = f"lowerdir={base},upperdir={target},workdir={work}"
    done = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(root)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RootfsError(f"cannot mount an overlay on {base}: {done.stderr.strip()}")
    try:
        inside = f"/tmp/{deb.name}"
        # A machine name of its own: nspawn keeps per-name state in /run/systemd/nspawn/.
        command = ["systemd-nspawn", "--register=no", "--keep-unit", "-q", "--private-network",
                   f"--machine=batm-install-{os.getpid()}", f"--bind-ro={deb}:{inside}",
                   "-D", str(root), "env", "DEBIAN_FRONTEND=noninteractive",
                   "apt-get", "install", "-y", "-q", "--no-install-recommends", inside]
        with open(log, "ab") as out:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RootfsError(f"apt-get install {deb.name} failed in the rootfs (exit "
                              f"{done.returncode}); see {log}")
        provision(root)
    finally:
        subprocess.run(["umount", str(root)], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


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
