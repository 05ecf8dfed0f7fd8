"""The rig supervisor with stand-in processes: up, every §5 action, down, and cleanup after a
crashed supervisor. Uses namespaces as root and loopback otherwise; needs socat."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batm_common.control_client import AgentError, answers, call
from sim import clock_skew, lifecycle, netns, prereqs
from sim.layout import SUPERVISOR, parse_terminal_specs
from sim.naming import RigNames
from sim.procs import marked_pids
from sim.rigfile import load_rig_file
from sim.testsupport import require_binaries, unavailable

BATM_SIM = str(Path(sys.executable).with_name("batm-sim"))


def _up(rig_dir: Path, terminals: int = 2, *extra: str) -> Path:
    require_binaries("socat", *(["ip"] if prereqs.is_root() else []))
    proc = subprocess.run([BATM_SIM, "up", "--dir", str(rig_dir), "--terminals", str(terminals),
                           "--stand-ins", "--no-display", *extra], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return rig_dir / "rig.json"


def _assert_gone(rig_dir: Path) -> None:
    names = RigNames.for_dir(rig_dir)
    assert marked_pids(names.id) == []
    if prereqs.is_root():
        assert netns.leftovers(names) == []
    assert not (rig_dir / "sim.sock").exists()
    assert not (rig_dir / "rig.json").exists()


@pytest.fixture
def rig_dir(tmp_path: Path):
    path = tmp_path / "rig"
    try:
        yield path
    finally:
        lifecycle.down(path)


def _ask(rig, request: dict) -> dict:
    return call(rig.supervisor, request, peer=SUPERVISOR)


def _children(rig) -> dict:
    return _ask(rig, {"cmd": "status"})["children"]


def test_up_actions_down(rig_dir: Path) -> None:
    rig = load_rig_file(_up(rig_dir))
    assert rig.kind == "sim" and len(rig.terminals) == 2
    assert rig.isolation == ("netns" if prereqs.is_root() else "loopback")
    assert answers(rig.supervisor)
    first = rig.terminals[0]
    control = Path(first.state_dir) / "control.sock"
    assert answers(control)
    assert os.path.realpath(first.console).startswith("/dev/pts/")
    if prereqs.is_root():
        assert first.netns and first.netns in netns.list_netns()
        assert rig.server.gate == "192.0.2.1:8443" and first.address == "192.0.2.10"

    # wipe: the state dir is emptied and the agent is back
    (Path(first.state_dir) / "identity.key").write_text("secret")
    subprocess.run([BATM_SIM, "terminal", "wipe", first.serial, "--dir", str(rig_dir)],
                   check=True, capture_output=True)
    assert not (Path(first.state_dir) / "identity.key").exists()
    assert answers(control)

    agent = f"{first.serial}-agent"
    _ask(rig, {"cmd": "terminal", "serial": first.serial, "action": "kill"})
    assert _children(rig)[agent]["alive"] is False
    assert _children(rig)[agent]["returncode"] == -signal.SIGKILL
    _ask(rig, {"cmd": "terminal", "serial": first.serial, "action": "start"})
    assert _children(rig)[agent]["alive"] is True
    pid = _children(rig)[agent]["pid"]
    _ask(rig, {"cmd": "terminal", "serial": first.serial, "action": "restart"})
    assert _children(rig)[agent]["pid"] != pid
    _ask(rig, {"cmd": "terminal", "serial": first.serial, "action": "stop"})
    assert _children(rig)[agent]["alive"] is False
    assert _children(rig)[f"{rig.terminals[1].serial}-agent"]["alive"] is True

    _ask(rig, {"cmd": "server", "action": "stop"})
    assert _children(rig)["server"]["alive"] is False
    _ask(rig, {"cmd": "server", "action": "start"})
    assert _children(rig)["server"]["alive"] is True
    assert json.loads((rig_dir / "server" / "server.json").read_text())["pid"]

    bad = subprocess.run([BATM_SIM, "terminal", "stop", "NOPE", "--dir", str(rig_dir)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "no terminal 'NOPE'" in bad.stderr
    again = subprocess.run([BATM_SIM, "up", "--dir", str(rig_dir), "--stand-ins"],
                           capture_output=True, text=True)
    assert again.returncode == 1 and "already up" in again.stderr

    down = subprocess.run([BATM_SIM, "down", "--dir", str(rig_dir)], capture_output=True,
                          text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    _assert_gone(rig_dir)
    assert (rig_dir / "logs" / "supervisor.log").exists()  # logs stay for the post-mortem
    down = subprocess.run([BATM_SIM, "down", "--dir", str(rig_dir)], capture_output=True,
                          text=True, timeout=120)
    assert down.returncode == 0, down.stderr


def test_loopback_rig_without_namespaces(rig_dir: Path) -> None:
    rig = load_rig_file(_up(rig_dir, 2, "--loopback"))
    assert rig.isolation == "loopback" and "namespaces" in rig.left_out
    assert rig.server.netns is None and rig.server.address == "127.0.0.1"
    assert all(t.netns is None and t.address == "127.0.0.1" for t in rig.terminals)
    if prereqs.is_root():
        assert netns.leftovers(RigNames.for_dir(rig_dir)) == []
    assert all(answers(Path(t.state_dir) / "control.sock") for t in rig.terminals)
    lifecycle.down(rig_dir)
    _assert_gone(rig_dir)


def test_down_cleans_after_a_crashed_supervisor(rig_dir: Path) -> None:
    _up(rig_dir, terminals=1)
    state = json.loads((rig_dir / "sim-state.json").read_text())
    os.kill(state["supervisor_pid"], signal.SIGKILL)
    assert marked_pids(RigNames.for_dir(rig_dir).id)  # its children outlive it
    done = lifecycle.down(rig_dir)
    assert any("did not answer" in line for line in done)
    _assert_gone(rig_dir)


def test_clock_offset_shifts_the_agents_wall_clock_until_put_right(rig_dir: Path) -> None:
    if clock_skew.library() is None:
        unavailable(f"needs libfaketime (Debian package {clock_skew.PACKAGE})")
    rig = load_rig_file(_up(rig_dir, 1))
    serial, control = rig.terminals[0].serial, Path(rig.terminals[0].state_dir) / "control.sock"

    def skew() -> float:
        return call(control, {"cmd": "status"})["status"]["wall_time"] - time.time()

    assert abs(skew()) < 5
    shifted = subprocess.run([BATM_SIM, "terminal", "restart", serial, "--dir", str(rig_dir),
                              "--clock-offset", "-34560000"], capture_output=True, text=True)
    assert shifted.returncode == 0, shifted.stderr
    assert abs(skew() + 34_560_000) < 5  # 400 days back
    _ask(rig, {"cmd": "terminal", "serial": serial, "action": "kill"})
    _ask(rig, {"cmd": "terminal", "serial": serial, "action": "start"})
    assert abs(skew() + 34_560_000) < 5  # a power cut does not put the clock right
    _ask(rig, {"cmd": "terminal", "serial": serial, "action": "restart", "clock_offset": 7200})
    assert abs(skew() - 7200) < 5
    _ask(rig, {"cmd": "terminal", "serial": serial, "action": "restart", "clock_offset": 0})
    assert abs(skew()) < 5
    with pytest.raises(AgentError, match="start and restart actions only"):
        _ask(rig, {"cmd": "terminal", "serial": serial, "action": "wipe", "clock_offset": 5})
    with pytest.raises(AgentError, match="number of seconds"):
        _ask(rig, {"cmd": "terminal", "serial": serial, "action": "restart",
                   "clock_offset": "2h"})


def test_supervisor_rejects_bad_requests(rig_dir: Path) -> None:
    rig = load_rig_file(_up(rig_dir, terminals=1))
    with pytest.raises(AgentError, match="unknown cmd"):
        _ask(rig, {"cmd": "reboot"})
    with pytest.raises(AgentError, match="terminal action must be"):
        _ask(rig, {"cmd": "terminal", "serial": rig.terminals[0].serial,
                              "action": "explode"})
    with pytest.raises(AgentError, match="server action must be"):
        _ask(rig, {"cmd": "server", "action": "explode"})
    assert answers(rig.supervisor)


def test_failed_bring_up_cleans_up_and_says_why(rig_dir: Path, monkeypatch) -> None:
    require_binaries("socat", *(["ip"] if prereqs.is_root() else []))
    monkeypatch.setenv("BATM_SIM_STANDIN_FAIL", "agent")
    specs = parse_terminal_specs(1, None, None)
    with pytest.raises(lifecycle.RigError) as info:
        lifecycle.up(rig_dir, specs, "B", standins=True, timeout=30, display=False)
    message = str(info.value)
    assert "did not come up" in message and "SIM00001-agent exited with 3" in message
    assert "failing on purpose" in message  # the log tail of the agent that died
    _assert_gone(rig_dir)


def test_rig_goes_down_when_its_directory_is_deleted(rig_dir: Path) -> None:
    _up(rig_dir, terminals=1)
    rig_id = RigNames.for_dir(rig_dir).id
    shutil.rmtree(rig_dir)
    deadline = time.monotonic() + 30
    while marked_pids(rig_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marked_pids(rig_id) == []
    if prereqs.is_root():
        assert netns.leftovers(RigNames.for_dir(rig_dir)) == []


def test_missing_binary_names_the_debian_package(monkeypatch) -> None:
    monkeypatch.setattr(prereqs, "which", lambda name: None)
    with pytest.raises(prereqs.PrerequisiteError, match=r"apt-get install .*socat"):
        lifecycle.plan(parse_terminal_specs(1, None, None), Path("/tmp/x"), "B", True, 5.0)
