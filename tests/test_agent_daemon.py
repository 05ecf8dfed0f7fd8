"""The real agent daemon against the real reference server, on loopback (no namespaces needed).

The HIL suite covers the seed's flows on the simulated rig; these cover what the rig does not:
a server whose key changed after pairing, and a damaged settings file at start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from waiting import wait_for as wait_until

from batm_common.control_client import AgentError, ControlClient
from batm_common.control_commands import AdminCommand
from batm_common.quarantine import STATE_FILE_EVENT

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    def __init__(self, args: list[str], log: Path):
        self.args = args
        self.log = log
        self.popen: subprocess.Popen | None = None
        self.env: dict[str, str] = {}  # added to the environment (e.g. a shifted clock)

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT,
                                          env=os.environ | self.env)

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class Loopback:
    """A server and one terminal on 127.0.0.1."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.data_dir = root / "server"
        self.state_dir = root / "agent"
        hw, slots = root / "hw", root / "slots"
        (slots / "a").mkdir(parents=True)
        hw.mkdir()
        (hw / "serial-number").write_text("T-LOOP-1")
        (hw / "model").write_text("test")
        (slots / "a" / "manifest.json").write_text(json.dumps({"version": 20230801}))
        (slots / "active").symlink_to("a")
        self.server = Proc(
            [str(BIN / "batm-server"), "run", "--data-dir", str(self.data_dir),
             "--listen", f"127.0.0.1:{self.port}"], root / "server.log")
        self.agent = Proc(
            [str(BIN / "batm-agent"), "run", "--state-dir", str(self.state_dir),
             "--hardware-dir", str(hw), "--slots-dir", str(slots), "--retry-max", "1"],
            root / "agent.log")

    def start_server(self) -> None:
        self.server.start()
        wait_until(lambda: (self.data_dir / "server.json").exists(), 20, "server.json")

    def start_agent(self) -> None:
        self.agent.start()
        wait_until(lambda: (self.state_dir / "control.sock").exists(), 20, "control socket")

    def agent_cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "batm-agent"), *args, "--state-dir", str(self.state_dir)],
                              capture_output=True, text=True, check=check, timeout=60)

    def server_cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "batm-server"), *args, "--data-dir", str(self.data_dir)],
                              capture_output=True, text=True, check=check, timeout=60)

    def wait_screen(self, screen_id: str, timeout: float = 30) -> dict:
        """Returns as soon as the screen shows; the generous timeout is for a loaded machine."""
        done = self.agent_cli("wait", screen_id, "--timeout", str(timeout), "--json", check=False)
        assert done.returncode == 0, (
            f"{screen_id} not shown within {timeout:g} s: {done.stderr.strip()}\n"
            f"agent log tail:\n{self.agent.log.read_text()[-3000:]}")
        return json.loads(done.stdout)

    def screen(self) -> dict:
        return json.loads(self.agent_cli("screen", "--json").stdout)

    def pair(self) -> None:
        self.server_cli("terminal", "create", "T-LOOP-1", "--scenario", "B")
        self.agent_cli("set-server", f"127.0.0.1:{self.port}")
        code = self.wait_screen("pairing_code")["pairing_code"]
        self.server_cli("pairing", "approve", "T-LOOP-1", "--code", code)
        self.wait_screen("in_service")

    def logs(self) -> str:
        return "".join(p.log.read_text(errors="replace") for p in (self.server, self.agent)
                       if p.log.exists())


@pytest.fixture
def loopback(tmp_path):
    rig = Loopback(tmp_path)
    try:
        yield rig
    except BaseException:
        print(rig.logs())
        raise
    finally:
        rig.agent.stop()
        rig.server.stop()


def test_changed_server_key_shows_mismatch_and_only_the_technician_re_pairs(loopback):
    loopback.start_server()
    loopback.start_agent()
    loopback.pair()

    # The server is reinstalled: same address, new CA and key. The terminal must not trust it.
    loopback.server.stop()
    saved = loopback.root / "old-server"
    shutil.move(loopback.data_dir, saved)
    loopback.start_server()
    loopback.server_cli("terminal", "create", "T-LOOP-1", "--scenario", "B")
    screen = loopback.wait_screen("certificate_mismatch")
    assert "CERTIFICATE MISMATCH" in screen["title"]
    status = json.loads(loopback.agent_cli("status", "--json").stdout)
    assert status["paired"] is True  # nothing was dropped silently
    assert loopback.server_cli("pairing", "list", "--json").stdout.strip() == "[]"

    # The technician re-enters the address: that is the decision to trust the new server. The
    # terminal is paired, so that needs the admin PIN (issue 13, item 4).
    refused = loopback.agent_cli("set-server", f"127.0.0.1:{loopback.port}", check=False)
    assert refused.returncode == 1 and "PIN" in refused.stderr
    with ControlClient(loopback.state_dir) as client:
        session = client.call(AdminCommand.UNLOCK, pin="000000")["session"]
        client.call(AdminCommand.SET_PIN, session=session, new="482913")
    loopback.agent_cli("set-server", f"127.0.0.1:{loopback.port}", "--pin", "482913")
    code = loopback.wait_screen("pairing_code")["pairing_code"]
    loopback.server_cli("pairing", "approve", "T-LOOP-1", "--code", code)
    loopback.wait_screen("in_service")


def test_corrupt_settings_file_keeps_the_last_good_settings(loopback):
    loopback.start_server()
    loopback.start_agent()
    loopback.pair()
    loopback.agent.stop()

    settings = loopback.state_dir / "settings.json"
    settings.write_text('{"format": 1, "server": "127.0.0.1:')  # torn from outside the agent
    loopback.start_agent()
    loopback.wait_screen("in_service")  # the backup still had the server and the pairing
    assert "not valid JSON" in loopback.agent.log.read_text()
    assert list(loopback.state_dir.glob("settings.json.corrupt-*"))


def test_damaged_state_files_never_crash_loop_and_the_screen_says_so(loopback):
    """Issue 13, item 5: a damaged local.db was 'file is not a database', exit 1, and a dark
    kiosk under Restart=always; both settings files damaged showed a plain 'set the server'."""
    loopback.state_dir.mkdir(parents=True)
    for name in ("local.db", "settings.json", "settings.json.bak", "mqtt-credentials.json"):
        (loopback.state_dir / name).write_bytes(b"\x00garbage\xff" * 64)
    loopback.start_agent()
    screen = loopback.wait_screen("set_server")
    assert "damaged" in screen["text"] and screen["detail"]
    assert loopback.agent.popen.poll() is None  # still running
    assert list(loopback.state_dir.glob("local.db.corrupt-*"))
    assert list(loopback.state_dir.glob("settings.json.bak.corrupt-*"))
    assert "Traceback" not in loopback.agent.log.read_text()


def test_every_damaged_state_file_is_quarantined_and_reported_to_the_server(loopback):
    """Issue 13, item 5: each state file the agent or its updater keeps, when damaged, is moved
    aside and replaced (restored, recreated or refused), and the server hears of each one."""
    loopback.start_server()
    loopback.start_agent()
    loopback.pair()
    loopback.agent.stop()
    slots = loopback.root / "slots"
    damaged = {
        loopback.state_dir / "settings.json": "restored",  # the mirror still holds the pairing
        loopback.state_dir / "local.db": "recreated",
        loopback.state_dir / "wg-private.key": "recreated",
        loopback.state_dir / "mqtt-credentials.json": "recreated",  # new ones from the gate
        loopback.state_dir / "admin-pin.json": "refused",  # never the factory PIN instead
        slots / "updater" / "journal.json": "recreated",
    }
    for path in damaged:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x00torn sector\xff" * 32)
    loopback.start_agent()
    loopback.wait_screen("in_service")  # still paired: nothing here costs the pairing

    def reported() -> dict[str, dict]:
        answer = loopback.server_cli("terminal", "events", "T-LOOP-1", "--json", "--limit", "50")
        return {Path(e["data"]["file"]).name: e["data"]
                for e in json.loads(answer.stdout)["events"]
                if e["type"] == STATE_FILE_EVENT}

    wait_until(lambda: len(reported()) == len(damaged), 30,
               lambda: f"{len(damaged)} quarantine events; got {sorted(reported())}")
    events = reported()
    for path, replacement in damaged.items():
        event = events[path.name]
        assert event["replacement"] == replacement, event
        assert Path(event["moved_to"]).read_bytes().startswith(b"\x00torn sector")
    with ControlClient(loopback.state_dir) as client, pytest.raises(AgentError, match="damaged"):
        client.call(AdminCommand.UNLOCK, pin="000000")
    assert "Traceback" not in loopback.agent.log.read_text()


def test_key_files_are_private(loopback):
    loopback.start_server()
    loopback.start_agent()
    loopback.pair()
    for name in ("identity.key", "settings.json"):
        mode = os.stat(loopback.state_dir / name).st_mode & 0o777
        assert mode == 0o600, f"{name} has mode {oct(mode)}"


def test_bad_address_is_refused_and_the_stored_one_kept(loopback):
    loopback.start_server()
    loopback.start_agent()
    loopback.pair()
    result = loopback.agent_cli("set-server", "gate..example:99999", check=False)
    assert result.returncode == 1
    assert "empty label" in result.stderr or "outside 1-65535" in result.stderr
    assert "Traceback" not in result.stderr
    assert loopback.screen()["server"] == f"127.0.0.1:{loopback.port}"
    with contextlib.suppress(FileNotFoundError):
        assert json.loads((loopback.state_dir / "settings.json").read_text())["server"] == (
            f"127.0.0.1:{loopback.port}"
        )
