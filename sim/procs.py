"""Children of the supervisor: start, stop, kill, and find them again after a crash.

Each child runs in its own process group (so a stop reaches whatever it forked), logs stdout and
stderr to one file under D/logs, and carries the rig's marker variable in its environment: `down`
finds every process of a rig by that marker even when the supervisor that started them is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sim.naming import ENV_MARKER


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    rig_id: str
    netns: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    pass_fds: tuple[int, ...] = ()
    proc: subprocess.Popen | None = None
    exit_logged: bool = False

    def command(self) -> list[str]:
        if self.netns:
            return ["ip", "netns", "exec", self.netns, *self.argv]
        return list(self.argv)

    def start(self) -> None:
        if self.alive():
            return
        env = dict(os.environ)
        env.update(self.env)
        env[ENV_MARKER] = self.rig_id
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab", buffering=0) as log:
            log.write(f"--- {_now()} starting {' '.join(self.command())}\n".encode())
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                pass_fds=self.pass_fds,
            )
        self.exit_logged = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the group, wait, then SIGKILL: the child always ends up stopped."""
        if self.proc is None:
            return
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.log(f"did not stop within {timeout:.0f}s of SIGTERM: SIGKILL")
        self.kill()
        self.log_exit()

    def kill(self) -> None:
        """SIGKILL the group (a power cut): nothing gets to clean up."""
        if self.proc is None:
            return
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def log(self, message: str) -> None:
        with contextlib.suppress(OSError), open(self.log_path, "a") as log:
            log.write(f"--- {_now()} {message}\n")

    def log_exit(self) -> None:
        code = self.returncode()
        if code is not None and not self.exit_logged:
            self.exit_logged = True
            how = f"signal {-code}" if code < 0 else f"code {code}"
            self.log(f"{self.name} exited with {how}")


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def marked_pids(rig_id: str) -> list[int]:
    """Every process whose environment carries this rig's marker (except this one)."""
    needle = f"{ENV_MARKER}={rig_id}".encode()
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_marked(rig_id: str, grace: float = 2.0) -> list[int]:
    """SIGTERM every marked process, SIGKILL the ones still there after `grace`."""
    pids = marked_pids(rig_id)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _any_alive(pids):
        time.sleep(0.05)
    for pid in marked_pids(rig_id):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return pids


def _any_alive(pids: list[int]) -> bool:
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            return True
    return False
