"""`batm-console` on a real pty pair made by socat, driven with pyserial from the other end,
bridged to a control server with a fake backend."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial
from fake_agent import FakeAgent, screen
from waiting import wait_for

from agent.console import LineEditor

BATM_CONSOLE = str(Path(sys.executable).with_name("batm-console"))
PROMPT = b"batm> "


def require_socat() -> str:
    path = shutil.which("socat")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("socat is missing; CI must have it (scripts/install-system-deps)")
        pytest.skip("socat is not installed (apt-get install socat); serial console not tested")
    return path


class PtyPair:
    """socat joining two ptys: the console opens `a`, the test plays the technician on `b`."""

    def __init__(self, directory: Path) -> None:
        self.a = directory / "ttyA"
        self.b = directory / "ttyB"
        self.log = directory / "socat.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> PtyPair:
        socat = require_socat()
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [socat, "-d", "-d", f"pty,raw,echo=0,link={self.a}",
                 f"pty,raw,echo=0,link={self.b}"], stderr=log)
        wait_for(lambda: (self.a.exists() and self.b.exists()
                          and "starting data transfer loop" in self.log.read_text())
                 or self.process.poll() is not None, what="socat's ptys")
        assert self.process.poll() is None, self.log.read_text()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


class Technician:
    """The far end of the serial line."""

    def __init__(self, path: Path) -> None:
        self.port = serial.Serial(str(path), 115200, timeout=10)

    def type(self, text: str | bytes, end: bytes = b"\r") -> None:
        data = text.encode() if isinstance(text, str) else text
        self.port.write(data + end)

    def until_prompt(self) -> str:
        data = self.port.read_until(PROMPT)
        assert data.endswith(PROMPT), f"no prompt, got {data!r}"
        return data[: -len(PROMPT)].decode(errors="replace")

    def command(self, text: str) -> str:
        """Type a command in human mode; return what came back before the next prompt."""
        self.type(text)
        echo_and_answer = self.until_prompt()
        echo, _, answer = echo_and_answer.partition("\r\n")
        assert echo == text, f"the console echoed {echo!r}"
        return answer

    def json_line(self) -> dict:
        line = self.port.readline()
        assert line.endswith(b"\r\n"), f"no complete line, got {line!r}"
        return json.loads(line)

    def ask(self, text: str | bytes) -> dict:
        self.type(text)
        return self.json_line()

    def sync(self, json_mode: bool = False) -> None:
        """Skip whatever is still in flight: type a unique bad command, read past its answer."""
        marker = f"sync-{time.monotonic_ns()}"
        self.type(marker)
        if json_mode:
            while marker not in self.json_line().get("error", ""):
                pass
        else:
            self.port.read_until(f"unknown command '{marker}'".encode())
            self.until_prompt()

    def close(self) -> None:
        self.port.close()


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.agent = FakeAgent(tmp_path).start()
        self.ptys = PtyPair(tmp_path).start()
        self.stderr_path = tmp_path / "console.log"
        self.console: subprocess.Popen | None = None
        self.tech: Technician | None = None

    def start_console(self, *extra: str) -> Technician:
        # Open our end first: the console's banner must not arrive before anyone listens.
        self.tech = Technician(self.ptys.b)
        with open(self.stderr_path, "w") as stderr:
            self.console = subprocess.Popen(
                [BATM_CONSOLE, "--port", str(self.ptys.a), "--state-dir", str(self.tmp_path),
                 *extra], stdout=subprocess.DEVNULL, stderr=stderr,
                env={k: v for k, v in os.environ.items() if not k.startswith("BATM_")})
        return self.tech

    def stop(self) -> str:
        if self.console is not None:
            self.console.terminate()
            self.console.wait(10)
        if self.tech is not None:
            self.tech.close()
        self.ptys.stop()
        self.agent.stop()
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""


@pytest.fixture
def rig(tmp_path: Path):
    require_socat()
    setup = Rig(tmp_path)
    yield setup
    log = setup.stop()
    assert "Traceback" not in log, log


@pytest.fixture
def tech(rig: Rig) -> Technician:
    technician = rig.start_console()
    banner = technician.until_prompt()
    assert "BATM terminal console" in banner
    return technician


def switch_to_json(tech: Technician) -> None:
    tech.type("json on")
    for _ in range(5):  # the echo of "json on" comes first, in human mode
        line = tech.port.readline()
        if line.startswith(b"{"):
            assert json.loads(line) == {"ok": True, "json": True}
            return
    raise AssertionError("no JSON answer to 'json on'")


# -- human mode ---------------------------------------------------------------------------------


def test_human_commands(tech: Technician, rig: Rig) -> None:
    assert "status" in tech.command("help")
    answer = tech.command("status")
    assert "serial:" in answer and "T-0042" in answer
    assert "version:" in answer and "20230801" in answer
    rig.agent.publish(screen("pairing_code", title="Pairing code", pairing_code="7K3M-Q9ZD"))
    answer = tech.command("screen")
    assert "pairing_code" in answer and "Pairing code" in answer and "7K3M-Q9ZD" in answer
    assert tech.command("set-server 192.0.2.7") == "server set to 192.0.2.7:8443\r\n"
    assert rig.agent.backend.server == "192.0.2.7:8443"
    answer = tech.command("set-server a..b")
    assert answer.startswith("error: invalid server address 'a..b'") and "empty label" in answer
    assert tech.command("frobnicate").startswith("error: unknown command 'frobnicate'")
    assert tech.command("wait nothing_such").startswith("error: unknown screen id")


def test_line_editing_and_line_endings(tech: Technician) -> None:
    tech.type("statux\x7f\x08us")  # DEL and BS erase one character each
    echoed = tech.until_prompt()
    assert "\b \b\b \b" in echoed
    assert "serial:" in echoed
    tech.type("screen", end=b"\r\n")  # CRLF is one line end, not two
    tech.type("help", end=b"\n")
    assert "screen:" in tech.until_prompt()
    assert "commands:" in tech.until_prompt()
    tech.type(b"\x1b[A\x1b[Dhelp\x01")  # arrow keys and control characters are ignored
    assert "commands:" in tech.until_prompt()
    tech.type("junk\x03", end=b"")  # Ctrl-C abandons the line
    assert tech.until_prompt().endswith("^C\r\n")
    assert "commands:" in tech.command("help")


def test_garbage_and_overlong_lines_in_human_mode(tech: Technician) -> None:
    tech.type(b"\xff\xfe\x80\xc3")
    assert "error: the line is not valid UTF-8 text" in tech.until_prompt()
    tech.type(b"y" * 3000)
    assert "error: the line is longer than 1024 bytes" in tech.until_prompt()
    assert "serial:" in tech.command("status")


def test_agent_down_and_back(tech: Technician, rig: Rig) -> None:
    rig.agent.stop()
    answer = tech.command("status")
    assert answer.startswith("error: the agent is not running (no control socket at")
    rig.agent.start()
    assert "T-0042" in tech.command("status")


# -- JSON mode ------------------------------------------------------------------------------------


def test_json_mode_one_line_per_command(tech: Technician, rig: Rig) -> None:
    switch_to_json(tech)
    # Several commands in one burst, with every line ending: exactly one answer each, in order.
    tech.port.write(b"status\r\nscreen\rhelp\nbogus\r\nset-server 198.51.100.9:9443\r\n")
    status, screen_answer, help_answer, bogus, set_server = (tech.json_line() for _ in range(5))
    assert status["ok"] is True and status["status"]["serial"] == "T-0042"
    assert screen_answer["ok"] is True and screen_answer["screen"]["screen"] == "connecting"
    assert help_answer["ok"] is True and "status" in help_answer["commands"]
    assert bogus["ok"] is False and "unknown command 'bogus'" in bogus["error"]
    assert set_server == {"ok": True, "server": "198.51.100.9:9443"}
    assert tech.ask("set-server 198.51.100.9:0")["error"].startswith("invalid server address")
    tech.type("   ")  # an empty line is not a command: no answer at all
    assert tech.ask("ping-less")["error"].startswith("unknown command 'ping-less'")
    # Back to human mode: a prompt again.
    tech.type("json off")
    assert "JSON mode off" in tech.until_prompt()


def test_json_mode_survives_garbage_and_overlong_lines(tech: Technician) -> None:
    switch_to_json(tech)
    answer = tech.ask(b"\xff\xfe\x00\x80garbage")
    assert answer["ok"] is False and "UTF-8" in answer["error"]
    answer = tech.ask(b"{" * 5000)
    assert answer == {"ok": False, "error": "the line is longer than 1024 bytes; ignored"}
    assert tech.ask("status")["ok"] is True


def test_json_mode_wait(tech: Technician, rig: Rig) -> None:
    switch_to_json(tech)
    tech.type("wait in_service 30")
    wait_for(lambda: rig.agent.subscribers() == 1, what="the console to subscribe")
    rig.agent.publish(screen("in_service"))
    answer = tech.json_line()
    assert answer["ok"] is True and answer["screen"]["screen"] == "in_service"
    answer = tech.ask("wait pairing_code 0.3")
    assert answer["ok"] is False
    assert "the last screen seen was 'in_service'" in answer["error"]
    assert answer["screen"]["screen"] == "in_service"


def test_started_in_json_mode(rig: Rig) -> None:
    tech = rig.start_console("--json")
    tech.port.timeout = 0.5
    # The console flushes its input when it opens the port, so ask until it is listening.
    deadline = time.monotonic() + 15
    while True:
        tech.type("help")
        line = tech.port.readline()
        if line:
            break
        assert time.monotonic() < deadline, "the console never answered"
    tech.port.timeout = 10
    assert json.loads(line)["ok"] is True  # no banner, no prompt: the first line is the answer
    tech.sync(json_mode=True)
    assert tech.ask("screen")["screen"]["screen"] == "connecting"


def test_console_reopens_the_port_when_it_comes_back(rig: Rig, tech: Technician) -> None:
    tech.close()
    rig.ptys.stop()  # the USB-serial adapter is unplugged: both links disappear
    assert not rig.ptys.a.exists()
    rig.ptys.start()  # and plugged in again
    rig.tech = tech = Technician(rig.ptys.b)
    tech.port.timeout = 0.5
    deadline = time.monotonic() + 15
    while True:
        tech.type("help")
        if b"commands:" in tech.port.read_until(PROMPT):
            break
        assert time.monotonic() < deadline, "the console did not come back"
    assert rig.console is not None and rig.console.poll() is None
    tech.port.timeout = 10
    tech.sync()
    assert "T-0042" in tech.command("status")
    assert "waiting for it to come back" in rig.stderr_path.read_text()


def test_missing_port_is_one_clear_error(tmp_path: Path) -> None:
    result = subprocess.run([BATM_CONSOLE, "--port", str(tmp_path / "ttyNone"),
                             "--state-dir", str(tmp_path)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"batm-console: cannot open serial port {tmp_path}")


# -- the line editor alone -----------------------------------------------------------------------


def test_line_editor_events() -> None:
    editor = LineEditor(max_line=8)
    lines = [p for kind, p in editor.feed(b"ab\r\ncd\n\ref\x7f\x7fg\r") if kind == "line"]
    assert lines == [b"ab", b"cd", b"", b"g"]
    assert [k for k, _ in editor.feed(b"123456789\r")][-1] == "overlong"
    events = editor.feed("é\x7fx\r".encode())
    assert ("line", b"x") in events  # backspace erased the whole two-byte character
