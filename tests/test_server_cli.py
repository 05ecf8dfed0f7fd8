"""`batm-server` as an operator and systemd use it: a real process, real files, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_for

from server.ca import leaf_spki_der


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60,
    )


def assert_refused(result: subprocess.CompletedProcess, status: int, *mentions: str) -> None:
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for text in mentions:
        assert text in result.stderr, result.stderr
    if status == 1:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Short: admin.sock must fit in 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="batm-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class RunningServer:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None,
                 args: list[str] | None = None):
        self.data_dir = data_dir
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "run", "--data-dir", str(data_dir),
             "--listen", "127.0.0.1:0", *(args or [])],
            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
        )
        wait_for(lambda: self._announced() or self.process.poll() is not None, timeout=15.0)
        assert self.process.poll() is None, self.process.stderr.read()
        self.info = json.loads((data_dir / "server.json").read_text())

    def _announced(self) -> bool:
        # This process's server.json, not one a crashed predecessor left behind.
        try:
            info = json.loads((self.data_dir / "server.json").read_text())
        except (OSError, ValueError):
            return False
        return info.get("pid") == self.process.pid

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        return status, self.process.stderr.read()


@pytest.fixture
def running(data_dir) -> Iterator[RunningServer]:
    server = RunningServer(data_dir)
    yield server
    if server.process.poll() is None:
        server.stop()


# ---------------------------------------------------------------------------------- bad input


def test_usage_errors_exit_2(data_dir):
    assert_refused(cli(data_dir), 2, "usage")
    assert_refused(cli(data_dir, "terminal", "create", "T-1"), 2, "--scenario")
    assert_refused(cli(data_dir, "terminal", "create", "T-1", "--scenario", "C"), 2, "scenario")
    assert_refused(cli(data_dir, "pairing", "approve", "T-1"), 2, "--code")
    assert_refused(cli(data_dir, "run", "--listen", "127.0.0.1:99999"), 2, "--listen", "port")
    assert_refused(cli(data_dir, "run", "--advertise", "bad..name"), 2, "--advertise")


def test_refusals_exit_1_with_one_clear_line(data_dir):
    assert_refused(cli(data_dir, "terminal", "list"), 1, "check --data-dir")
    assert_refused(cli(data_dir, "terminal", "create", "bad serial!", "--scenario", "A"), 1,
                   "serial")
    assert cli(data_dir, "terminal", "create", "T-1", "--scenario", "A").returncode == 0
    assert_refused(cli(data_dir, "terminal", "create", "T-1", "--scenario", "B"), 1,
                   "already exists")
    assert_refused(cli(data_dir, "terminal", "unpair", "T-9"), 1, "no terminal with serial")
    assert_refused(cli(data_dir, "terminal", "unpair", "T-1"), 1, "not paired")
    assert_refused(cli(data_dir, "terminal", "delete", "T-9"), 1, "no terminal with serial")
    assert_refused(cli(data_dir, "pairing", "approve", "T-1", "--code", "12"), 1,
                   "8 characters")
    assert_refused(cli(data_dir, "pairing", "approve", "T-1", "--code", "ABCD-1234"), 1,
                   "no open pairing request")
    assert_refused(cli(data_dir, "terminal", "vpn", "T-9"), 1, "no terminal with serial")
    assert cli(data_dir, "terminal", "create", "T-2", "--scenario", "B").returncode == 0
    assert_refused(cli(data_dir, "terminal", "vpn", "T-2"), 1, "scenario B")


def test_offline_commands_work_on_the_database(data_dir):
    assert cli(data_dir, "terminal", "create", "T-1", "--scenario", "A",
               "--location", "Shop 7").returncode == 0
    table = cli(data_dir, "terminal", "list")
    assert table.returncode == 0
    header, row = table.stdout.splitlines()
    assert header.split()[:3] == ["SERIAL", "SCENARIO", "STATE"]
    assert row.split()[:3] == ["T-1", "A", "never_paired"]
    [terminal] = json.loads(cli(data_dir, "terminal", "list", "--json").stdout)
    assert terminal["location"] == "Shop 7" and terminal["state"] == "never_paired"
    assert json.loads(cli(data_dir, "pairing", "list", "--json").stdout) == []
    assert "no open pairing requests" in cli(data_dir, "pairing", "list").stdout
    assert cli(data_dir, "terminal", "delete", "T-1").returncode == 0
    assert json.loads(cli(data_dir, "terminal", "list", "--json").stdout) == []


# ---------------------------------------------------------------------------------- run


def test_run_serves_and_shuts_down_cleanly(running, data_dir):
    info = running.info
    assert info["pid"] == running.process.pid
    assert info["admin_socket"] == str(data_dir / "admin.sock")
    host, port = info["gate"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert (data_dir / "admin.sock").stat().st_mode & 0o777 == 0o600
    for secret in ("ca.key", "server.key"):
        assert (data_dir / secret).stat().st_mode & 0o777 == 0o600

    # The CLI goes through the running server (which logs what it did).
    assert cli(data_dir, "terminal", "create", "T-1", "--scenario", "B").returncode == 0
    assert [t["serial"] for t in json.loads(cli(data_dir, "terminal", "list", "--json").stdout)
            ] == ["T-1"]
    assert_refused(cli(data_dir, "terminal", "unpair", "T-1"), 1, "not paired")

    second = subprocess.run(
        [sys.executable, "-m", "server.cli", "run", "--data-dir", str(data_dir),
         "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=30)
    assert_refused(second, 1, "already running")

    status, log = running.stop()
    assert status == 0, log
    assert "terminal T-1 created" in log
    assert "Traceback" not in log
    assert not (data_dir / "server.json").exists()
    assert not (data_dir / "admin.sock").exists()


def test_ready_is_sent_to_systemd(data_dir):
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(data_dir / "notify.sock"))
    receiver.settimeout(15)
    server = RunningServer(data_dir, env={"NOTIFY_SOCKET": str(data_dir / "notify.sock")})
    try:
        assert receiver.recv(100) == b"READY=1"
    finally:
        status, log = server.stop()
        receiver.close()
    assert status == 0, log


def test_certificates_are_reused_across_restarts(data_dir):
    status, _ = RunningServer(data_dir).stop()
    assert status == 0
    first = {name: (data_dir / name).read_bytes()
             for name in ("ca.key", "ca.pem", "server.key", "server.pem")}
    spki = leaf_spki_der(data_dir)
    status, _ = RunningServer(data_dir).stop()
    assert status == 0
    assert {name: (data_dir / name).read_bytes() for name in first} == first
    assert leaf_spki_der(data_dir) == spki


def test_stale_socket_after_a_crash(data_dir):
    crashed = RunningServer(data_dir)
    crashed.process.kill()
    crashed.process.wait(10)
    crashed.process.stderr.close()
    assert (data_dir / "admin.sock").exists()
    # Nobody answers on the socket: the CLI works on the database instead...
    assert cli(data_dir, "terminal", "create", "T-1", "--scenario", "A").returncode == 0
    # ...and a new server starts over the stale files and sees the change.
    restarted = RunningServer(data_dir)
    try:
        listing = json.loads(cli(data_dir, "terminal", "list", "--json").stdout)
        assert [t["serial"] for t in listing] == ["T-1"]
    finally:
        status, log = restarted.stop()
    assert status == 0, log
