"""`up` and `down` of the booted rig, and the state file that lets `down` undo everything.

    D/rig.json        the HIL suite's rig file (kind "booted"; architecture §5 shape)
    D/booted.json     what down must stop/remove: pids, namespaces, the overlay mount
    D/server/         the server's data dir (its admin.sock is how the HIL drivers reach it)
    D/machine/        the container: overlay layers, root/ (mounted), console (pty link)
    D/logs/           rootfs build, server, nspawn

The server runs on the host in its own namespace (the host's batm-server: the server package is
not under test here); the terminal is the installed package, booted. `up` undoes what it did
when any step fails, so a failed `up` leaves no namespace, mount or process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sim.booted.machine import Machine, MachineError
from sim.booted.network import SERVER_ADDRESS, TERMINAL_ADDRESS, RigNetwork
from sim.booted.rootfs import SERIAL, RootfsError, ensure_rootfs
from sim.rigfile import load_rig_file

GATE_PORT = 8443
MQTT_PORT = 8883
AGENT_STATE_DIR = "/var/lib/batm-agent"
FIRMWARE_VERSION = 20230801  # the package's slot "a" (systemd/batm-terminal.tmpfiles.conf)
STATE_FILE = "booted.json"
PREREQUISITES = {"mmdebstrap": "mmdebstrap", "systemd-nspawn": "systemd-container",
                 "socat": "socat", "nsenter": "util-linux", "ip": "iproute2"}


class BootedRigError(RuntimeError):
    """The rig could not be brought up or down; str() says what and where to look."""


def missing_prerequisites() -> list[str]:
    """Debian packages to install before this rig can run (empty when none)."""
    problems = [pkg for tool, pkg in PREREQUISITES.items() if shutil.which(tool) is None]
    if os.geteuid() != 0:
        problems.append("root (namespaces, mounts and nspawn need it)")
    return problems


@dataclass
class Timings:
    rootfs_seconds: float
    rootfs_built: bool
    boot_seconds: float


def up(directory: Path, deb: Path, timeout: float = 120.0) -> Timings:
    directory = directory.resolve()
    if (directory / STATE_FILE).exists():
        raise BootedRigError(f"a booted rig is already up in {directory}: `down` it first")
    missing = missing_prerequisites()
    if missing:
        raise BootedRigError(f"cannot run the booted rig, missing: {', '.join(missing)}")
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        layers, built = ensure_rootfs(deb, logs / "rootfs.log")
    except RootfsError as exc:
        raise BootedRigError(str(exc)) from exc
    rootfs_seconds = time.monotonic() - started

    network = RigNetwork(secrets.token_hex(3))
    machine = Machine(directory / "machine", layers, network.terminal_netns_path)
    state = {"rig_id": network.rig_id, "layers": [str(p) for p in layers],
             "server_pid": None, "socat_pid": None}
    _save(directory, state)
    try:
        network.up()
        state["server_pid"] = _start_server(directory, network)
        _save(directory, state)
        machine.mount()
        booting = time.monotonic()
        machine.boot()
        state["socat_pid"] = machine.socat_pid
        _save(directory, state)
        machine.wait_ready(timeout, AGENT_STATE_DIR + "/control.sock")
        _wait_booted(machine, timeout)
        boot_seconds = time.monotonic() - booting
        _wait_server(directory, timeout)
        _write_rig_file(directory, network, machine)
    except (BootedRigError, MachineError, OSError, subprocess.SubprocessError) as exc:
        problems = down(directory)
        raise BootedRigError(f"{exc}" + (f"; also left behind: {problems}" if problems else "")
                             ) from exc
    return Timings(rootfs_seconds, built, boot_seconds)


def down(directory: Path) -> list[str]:
    """Stop and remove everything `up` made; returns what is left behind (empty when clean)."""
    directory = directory.resolve()
    try:
        state = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return []
    machine = Machine(directory / "machine", [Path(p) for p in state["layers"]], "",
                      socat_pid=state.get("socat_pid"))
    leader = machine.leader_pid()
    machine.stop()
    left = []
    if leader is not None and Path(f"/proc/{leader}/root/opt/batm").exists():
        left.append(f"the container's processes (its PID 1 is {leader})")
    if not machine.unmount():
        left.append(f"mount {machine.root}")
    if state.get("server_pid"):
        _stop_group(state["server_pid"])
    left += RigNetwork(state["rig_id"]).down()
    if not left:
        (directory / STATE_FILE).unlink(missing_ok=True)
    return left


def machine_of(directory: Path) -> Machine:
    """The running machine of the rig in `directory` (for tests that reach inside it)."""
    state = json.loads((directory / STATE_FILE).read_text())
    return Machine(directory / "machine", [Path(p) for p in state["layers"]], "",
                   socat_pid=state.get("socat_pid"))


def _save(directory: Path, state: dict) -> None:
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def _server_command() -> str:
    local = Path(sys.executable).parent / "batm-server"
    found = str(local) if local.exists() else shutil.which("batm-server")
    if found is None:
        raise BootedRigError("batm-server is not installed (run `make venv`)")
    return found


def _start_server(directory: Path, network: RigNetwork) -> int:
    data = directory / "server"
    data.mkdir(exist_ok=True)
    with open(directory / "logs" / "server.log", "ab") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", network.server_netns, _server_command(), "run",
             "--data-dir", str(data), "--listen", f"{SERVER_ADDRESS}:{GATE_PORT}",
             "--mqtt-listen", f"{SERVER_ADDRESS}:{MQTT_PORT}"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc.pid


def _wait_server(directory: Path, timeout: float) -> None:
    info = directory / "server" / "server.json"
    deadline = time.monotonic() + timeout
    while not info.exists():
        if time.monotonic() > deadline:
            raise BootedRigError(f"the server did not get ready; see {directory}/logs/server.log")
        time.sleep(0.2)


def _wait_booted(machine: Machine, timeout: float) -> None:
    """Until systemd says the boot is over (running, or degraded: a failed unit is the tests')."""
    done = machine.run("systemctl", "is-system-running", "--wait", timeout=timeout)
    if done.stdout.strip() not in ("running", "degraded"):
        raise BootedRigError(f"the machine did not finish booting: {done.stdout.strip()}")


def _stop_group(pid: int, grace: float = 10.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        # When `up` ran in this process the server is our child: a zombie until reaped, and a
        # zombie still counts as a member of its group.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _write_rig_file(directory: Path, network: RigNetwork, machine: Machine) -> None:
    rig = {
        "kind": "booted",
        "rig_id": network.rig_id,
        "scenario": "B",
        "isolation": "netns",
        # No power control (supervisor) and no display: a container has no KMS screen.
        "left_out": ["display", "power"],
        "logs_dir": str(directory / "logs"),
        "server": {
            "data_dir": str(directory / "server"),
            "netns": network.server_netns,
            "address": SERVER_ADDRESS,
            "gate": f"{SERVER_ADDRESS}:{GATE_PORT}",
            "vpn": None,
            "broker": f"{SERVER_ADDRESS}:{MQTT_PORT}",
            "log": str(directory / "logs" / "server.log"),
        },
        "terminals": [{
            "serial": SERIAL,
            "version": FIRMWARE_VERSION,
            "state_dir": str(machine.path(AGENT_STATE_DIR)),
            "netns": network.terminal_netns,
            "console": str(machine.console),
            "address": TERMINAL_ADDRESS,
            "display": None,
        }],
    }
    path = directory / "rig.json"
    path.write_text(json.dumps(rig, indent=2) + "\n")
    load_rig_file(path)  # the rig file the suite will load must be valid now, not at collection
