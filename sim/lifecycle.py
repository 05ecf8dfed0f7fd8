"""`up` and `down` of a simulated rig, as functions (the CLI, the demo and the tests call them).

`up` checks prerequisites, hands the supervisor its config, starts it and returns once the
supervisor reports the whole rig ready (or failed, with the reason). `down` asks the supervisor
to stop, then — whether or not it answered — kills every process carrying the rig's marker and
removes every namespace and link named after the rig. Both are safe to repeat.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from batm_common.control_client import ControlError, answers, call
from sim import netns, prereqs, replicas
from sim import vpn as sim_vpn
from sim.layout import SUPERVISOR, Layout, RigConfig, TerminalSpec
from sim.naming import ENV_MARKER, RigNames
from sim.procs import kill_marked, marked_pids


class RigError(RuntimeError):
    """The rig could not be brought up or reached; str() says why and where to look."""


@dataclass(frozen=True)
class UpResult:
    rig_file: Path
    seconds: float
    left_out: tuple[str, ...]


def plan(specs: list[TerminalSpec], rig_dir: Path, scenario: str, standins: bool,
         timeout: float, display: bool = True, loopback: bool = False,
         database: str = "sqlite", server_replicas: int = 1) -> RigConfig:
    """Decide what this machine can run; raise PrerequisiteError for what it cannot do without."""
    root = prereqs.is_root() and not loopback
    required = ["socat"] + (["ip"] if root else [])
    prereqs.require_binaries(required)
    use_xvfb = display and not prereqs.missing_binaries(prereqs.OPTIONAL_BINARIES)
    if not standins:
        absent = prereqs.missing_components(skip=() if use_xvfb else ("batm-display",))
        if absent:
            raise prereqs.PrerequisiteError(
                "the rig cannot start these components, they are not installed yet: "
                + ", ".join(absent)
            )
    replicas.check(database, server_replicas)
    absent = replicas.missing(database)
    if absent:
        raise prereqs.PrerequisiteError(f"--database {database} needs {absent}")
    return RigConfig(dir=str(rig_dir), terminals=specs, scenario=scenario, use_netns=root,
                     use_xvfb=use_xvfb, standins=standins, timeout=timeout,
                     database=database, replicas=server_replicas)


def up(rig_dir: Path | str, specs: list[TerminalSpec], scenario: str = "B",
       standins: bool = False, timeout: float = 60.0, display: bool = True,
       loopback: bool = False, database: str = "sqlite", server_replicas: int = 1) -> UpResult:
    started = time.monotonic()
    layout = Layout(rig_dir)
    if scenario not in ("A", "B"):
        raise RigError(f"--scenario must be A or B, not {scenario!r}")
    config = plan(specs, layout.dir, scenario, standins, timeout, display, loopback,
                  database, server_replicas)
    if layout.sim_sock.exists() and answers(layout.sim_sock):
        raise RigError(f"a rig is already up in {layout.dir}: `batm-sim down --dir {layout.dir}`")
    down(layout.dir, quiet=True)  # whatever a crashed earlier rig in this directory left
    # A new rig starts from a clean slate: never-paired terminals, an empty server, fresh logs.
    for path in [layout.logs, layout.server_data, layout.replica_data, layout.postgres,
                 *(layout.terminal(s.serial) for s in specs)]:
        shutil.rmtree(path, ignore_errors=True)
    layout.logs.mkdir(parents=True, exist_ok=True)
    config.save(layout.config)
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, **{ENV_MARKER: config.rig_id})
    with open(layout.log("supervisor"), "ab") as log:
        starter = subprocess.Popen(
            [sys.executable, "-m", "sim.supervisor", "--dir", str(layout.dir),
             "--ready-fd", str(write_fd)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            pass_fds=(write_fd,), start_new_session=True, env=env,
        )
    os.close(write_fd)
    starter.wait()  # the first child exits as soon as the daemon has forked
    with os.fdopen(read_fd) as ready:
        line = ready.readline()
    try:
        report = json.loads(line) if line else {"ok": False, "error": "the supervisor died"}
    except json.JSONDecodeError:
        report = {"ok": False, "error": f"the supervisor said {line!r}"}
    if not report.get("ok"):
        down(layout.dir, quiet=True)
        raise RigError(
            f"the rig did not come up: {report.get('error')}\n"
            f"(logs in {layout.logs}, supervisor log {layout.log('supervisor')})"
        )
    left_out = ()
    if not config.use_netns:
        why = "--loopback" if prereqs.is_root() else "not root"
        left_out += (f"namespaces ({why}: everything runs on 127.0.0.1)",)
    if not display:
        left_out += ("display windows (--no-display)",)
    elif not config.use_xvfb:
        missing = prereqs.missing_binaries(prereqs.OPTIONAL_BINARIES)
        left_out += (f"display windows ({prereqs.install_hint(missing)})",)
    return UpResult(layout.rig_file, time.monotonic() - started, left_out)


def down(rig_dir: Path | str, quiet: bool = False) -> list[str]:
    """Stop the rig and remove what `up` made; returns what was done. Idempotent."""
    layout = Layout(rig_dir)
    names = RigNames.for_dir(layout.dir)
    done: list[str] = []
    if layout.sim_sock.exists():
        try:
            answer = call(layout.sim_sock, {"cmd": "down"}, timeout=60, peer=SUPERVISOR)
            done.append("supervisor stopped the rig")
            done += answer.get("removed", [])
        except (ControlError, OSError) as exc:
            if not quiet:
                done.append(f"supervisor did not answer ({exc}); cleaning up without it")
    _wait_gone(names.id, 3.0)  # the supervisor and its children finishing their own exit
    killed = kill_marked(names.id)
    if killed:
        done.append(f"killed {len(killed)} leftover process(es)")
    if prereqs.is_root() and prereqs.which("ip"):
        done += netns.teardown(names)
    done += sim_vpn.cleanup(names)  # wireguard-go sockets a SIGKILL left behind
    done += replicas.cleanup(layout)  # a killed rig's PostgreSQL cluster
    for path in (layout.sim_sock, layout.rig_file, layout.state):
        path.unlink(missing_ok=True)
    return done


def _wait_gone(rig_id: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while marked_pids(rig_id) and time.monotonic() < deadline:
        time.sleep(0.05)


def act(rig_dir: Path | str, request: dict, timeout: float = 90.0) -> dict:
    layout = Layout(rig_dir)
    if not layout.sim_sock.exists():
        raise RigError(f"no rig is up in {layout.dir} (no {layout.sim_sock})")
    try:
        return call(layout.sim_sock, request, timeout=timeout, peer=SUPERVISOR)
    except ControlError as exc:
        raise RigError(str(exc)) from None
