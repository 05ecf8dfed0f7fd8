"""One booted terminal: systemd-nspawn, systemd as PID 1, on an overlay of the cached layers.

    socat PTY,link=D/console ⇄ systemd-nspawn -b (its /dev/console) ⇄ batm-console@console

The container's console is the terminal's serial line: socat gives its host end a path
(D/console) that pyserial opens like a Pi's USB-serial adapter. The overlay keeps the cached
layers (sim/booted/rootfs.py) pristine (D/upper holds everything the machine writes) and is what
makes the terminal's state survive a reboot of the machine. No udev in a container: the rig's
console unit does not bind to a device (sim/booted/rootfs.py), and the display is masked.

Stopping sends nspawn SIGTERM, which powers the container off cleanly (systemd stops the units,
journald flushes); SIGKILL after a grace period. `umount` and the process ids are what `down`
needs, kept by the rig's state file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

INSIDE_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")
REBOOT_EXIT = 133  # systemd-nspawn(1): the container asked to be rebooted


class MachineError(RuntimeError):
    """The machine did not start or boot; str() says where to look."""


@dataclass
class Machine:
    directory: Path  # D/machine
    layers: list[Path]  # the cached, read-only lower layers, top first
    netns_path: str
    socat_pid: int | None = None

    @property
    def root(self) -> Path:
        return self.directory / "root"

    @property
    def console(self) -> Path:
        return self.directory / "console"

    @property
    def log(self) -> Path:
        return self.directory / "nspawn.log"

    def path(self, inside: str) -> Path:
        """A path inside the machine, as the host sees it (e.g. the agent's state dir)."""
        return self.root / inside.lstrip("/")

    def mount(self) -> None:
        for sub in ("upper", "work", "root"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        if os.path.ismount(self.root):
            return
        lower = ":".join(str(p) for p in self.layers)
        options = (f"lowerdir={lower},upperdir={self.directory / 'upper'},"
                   f"workdir={self.directory / 'work'}")
        done = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(self.root)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise MachineError(f"cannot mount the rootfs overlay: {done.stderr.strip()}")

    def boot(self) -> None:
        """Start socat + nspawn in their own session; returns at once (see wait_ready)."""
        # The machine's name is its network namespace's: nspawn keeps per-name state in
        # /run/systemd/nspawn/, and every rig's directory is called root.
        nspawn = (f"systemd-nspawn --register=no --keep-unit -q --console=interactive "
                  f"--machine={Path(self.netns_path).name} "
                  f"--network-namespace-path={self.netns_path} -b -D {self.root}")
        # nspawn exits 133 when the container asks for a reboot: boot it again on the same
        # console, as a Pi comes back on the same USB-serial adapter.
        loop = f"while {nspawn}; [ $? -eq {REBOOT_EXIT} ]; do true; done"
        with open(self.log, "ab") as out:
            proc = subprocess.Popen(
                ["socat", f"PTY,link={self.console},rawer",
                 f"SYSTEM:{loop},pty,setsid,ctty,rawer"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.socat_pid = proc.pid

    def wait_ready(self, timeout: float, ready_file: str) -> float:
        """Seconds until `ready_file` (inside) exists; MachineError if the machine dies first."""
        started = time.monotonic()
        target = self.path(ready_file)
        while time.monotonic() - started < timeout:
            if target.exists():
                return time.monotonic() - started
            if self.socat_pid is None or not _alive(self.socat_pid):
                raise MachineError(f"the container stopped while booting; see {self.log}")
            time.sleep(0.2)
        raise MachineError(f"{ready_file} did not appear within {timeout:.0f} s; see {self.log}")

    def leader_pid(self) -> int | None:
        """PID 1 of the container, as the host numbers it (for nsenter); None between boots."""
        for pid in self._nspawn_pids():
            leaders = _children(pid)
            if leaders:
                return leaders[0]
        return None

    def _nspawn_pids(self) -> list[int]:
        return self._descendants_named("systemd-nspawn")

    def _descendants_named(self, comm: str) -> list[int]:
        """socat → socat (its EXEC/SYSTEM child) → sh (the reboot loop) → systemd-nspawn → …"""
        found, todo = [], _children(self.socat_pid) if self.socat_pid else []
        while todo:
            pid = todo.pop()
            if not _alive(pid):
                continue
            if _comm(pid) == comm:
                found.append(pid)
            elif _comm(pid) in ("socat", "sh"):
                todo.extend(_children(pid))
        return found

    def wait_rebooted(self, old_leader: int, timeout: float) -> float:
        """Seconds until a new PID 1 replaced `old_leader` and finished booting."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            leader = self.leader_pid()
            if leader is not None and leader != old_leader:
                done = self.run("systemctl", "is-system-running", "--wait", timeout=timeout)
                if done.stdout.strip() in ("running", "degraded"):
                    return time.monotonic() - started
            time.sleep(0.2)
        raise MachineError(f"the machine did not come back within {timeout:.0f} s; see {self.log}")

    def run(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a command inside the booted machine (all its namespaces), e.g. systemctl."""
        leader = self.leader_pid()
        if leader is None:
            raise MachineError("the machine is not running")
        # env -i: the host's environment (SSL_CERT_FILE, PATH of a venv…) means nothing inside.
        return subprocess.run(["nsenter", "-t", str(leader), "-a", "env", "-i", *INSIDE_ENV,
                               *command],
                              capture_output=True, text=True, timeout=timeout)

    def stop(self, grace: float = 20.0) -> None:
        """Power the container off cleanly; kill what is left after `grace` seconds.

        nspawn on SIGTERM asks the container's systemd to shut down and exits when it has; its
        exit status (not 133) ends the reboot loop, and socat ends with the loop. The order
        matters: killing the loop's shell first closes the console, nspawn exits on the hangup
        at once, and with no systemd on the host to remove its scope, the container's processes
        live on (found by the suite: twenty leftover containers). Whatever remains at the end
        goes with the container's PID 1: SIGKILL to a PID namespace's init kills all of it."""
        if self.socat_pid is None:
            return
        deadline = time.monotonic() + grace
        leaders: dict[int, str] = {}  # pid → start time: a pid reused since is not ours
        while time.monotonic() < deadline:
            nspawn, leader = self._nspawn_pids(), self.leader_pid()
            if leader is not None:
                leaders[leader] = _start_time(leader)
            if not nspawn:
                break
            for pid in nspawn:
                _signal(pid, signal.SIGTERM)
            while time.monotonic() < deadline and any(_alive(p) for p in nspawn):
                time.sleep(0.1)
        left = [pid for pid, started in leaders.items() if _start_time(pid) == started]
        for pid in [*left, *self._nspawn_pids(), *self._descendants_named("sh"),
                    self.socat_pid]:
            _signal(pid, signal.SIGKILL)
        _reap(self.socat_pid)
        self.socat_pid = None

    def unmount(self) -> bool:
        if os.path.ismount(self.root):
            return subprocess.run(["umount", str(self.root)]).returncode == 0
        return True


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ("" when it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
