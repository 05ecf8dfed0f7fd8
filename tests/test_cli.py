"""`batm-agent` status/screen/set-server/wait, run as the installed console script against a
control server with a fake backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_agent import FakeAgent, screen
from waiting import wait_for

BATM_AGENT = str(Path(sys.executable).with_name("batm-agent"))


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def agent(state_dir: Path):
    fake = FakeAgent(state_dir).start()
    yield fake
    fake.stop()


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATM_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def batm_agent(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    result = subprocess.run([BATM_AGENT, *args], capture_output=True, text=True,
                            timeout=timeout, env=_env())
    assert "Traceback" not in result.stderr, result.stderr
    return result


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([BATM_AGENT, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


def finish(process: subprocess.Popen, timeout: float = 20) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    assert "Traceback" not in err, err
    return process.returncode, out, err


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# -- status / screen ------------------------------------------------------------------------------


def test_status_human(agent: FakeAgent, state_dir: Path) -> None:
    agent.backend.paired = True
    result = batm_agent("status", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["serial:", "T-0042"]
    columns = {len(line) - len(line.partition(":")[2].lstrip()) for line in lines}
    assert len(columns) == 1, f"values are not aligned in one column: {lines}"
    text = result.stdout
    assert "paired:" in text and "yes" in text
    assert "server:" in text and " -" in text  # no server set yet
    assert "1h 02m 05s" in text


def test_status_json_and_state_dir_before_the_command(agent: FakeAgent, state_dir: Path) -> None:
    result = batm_agent("--state-dir", str(state_dir), "status", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == agent.backend.status()


def test_state_dir_from_environment(agent: FakeAgent, state_dir: Path) -> None:
    env = {**_env(), "BATM_STATE_DIR": str(state_dir)}
    result = subprocess.run([BATM_AGENT, "screen", "--json"], capture_output=True, text=True,
                            env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["screen"] == "connecting"


def test_screen_human_and_json(agent: FakeAgent, state_dir: Path) -> None:
    agent.publish(screen("pairing_code", title="Pairing code", text="Approve on the server",
                         pairing_code="7K3M-Q9ZD", step=1, steps=2))
    result = batm_agent("screen", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["screen:", "pairing_code"]
    assert "title:  Pairing code" in lines
    assert "text:   Approve on the server" in lines
    assert "code:   7K3M-Q9ZD" in lines
    assert "step:   1 of 2" in lines
    parsed = json.loads(batm_agent("screen", "--json", "--state-dir", str(state_dir)).stdout)
    assert parsed["pairing_code"] == "7K3M-Q9ZD"
    assert parsed["seq"] == 2


def test_commands_say_when_the_agent_is_down(state_dir: Path) -> None:
    for command in ("status", "screen"):
        result = batm_agent(command, "--state-dir", str(state_dir))
        assert result.returncode == 1
        assert one_line(result.stderr) == (
            f"batm-agent: the agent is not running (no control socket at "
            f"{state_dir / 'control.sock'})")
        assert result.stdout == ""


# -- set-server -----------------------------------------------------------------------------------


def test_set_server(agent: FakeAgent, state_dir: Path) -> None:
    result = batm_agent("set-server", "192.0.2.10", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    assert one_line(result.stdout) == "server set to 192.0.2.10:8443"
    assert agent.backend.server == "192.0.2.10:8443"


@pytest.mark.parametrize(
    ("address", "complaint"),
    [("a..b", "empty label"), ("host:0", "outside 1-65535"), ("[2001:db8::1", "closing ']'"),
     ("bad_host", "letters, digits and inner hyphens")],
)
def test_set_server_refuses_a_bad_address_even_with_the_agent_down(
    state_dir: Path, address: str, complaint: str
) -> None:
    result = batm_agent("set-server", address, "--state-dir", str(state_dir))
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith("batm-agent: invalid server address")
    assert complaint in line
    assert "not running" not in line


def test_set_server_refused_by_the_agent(agent: FakeAgent, state_dir: Path) -> None:
    result = batm_agent("set-server", "blocked.example", "--state-dir", str(state_dir))
    assert result.returncode == 1
    assert "this server is on the block list" in one_line(result.stderr)
    assert agent.backend.server is None


def test_set_server_with_the_agent_down(state_dir: Path) -> None:
    result = batm_agent("set-server", "192.0.2.10:8443", "--state-dir", str(state_dir))
    assert result.returncode == 1
    assert "the agent is not running" in one_line(result.stderr)


# -- wait -----------------------------------------------------------------------------------------


def test_wait_returns_when_the_screen_shows(agent: FakeAgent, state_dir: Path) -> None:
    process = spawn("wait", "pairing_code", "--timeout", "30", "--state-dir", str(state_dir))
    wait_for(lambda: agent.subscribers() == 1, what="the wait command to subscribe")
    agent.publish(screen("terminal_unpaired"))
    assert process.poll() is None
    started = time.monotonic()
    agent.publish(screen("pairing_code", pairing_code="7K3M-Q9ZD"))
    code, out, err = finish(process)
    assert code == 0, err
    assert time.monotonic() - started < 5
    assert one_line(out) == "pairing_code is showing"


def test_wait_for_the_current_screen_and_json(agent: FakeAgent, state_dir: Path) -> None:
    result = batm_agent("wait", "connecting", "--json", "--timeout", "0",
                        "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["screen"] == "connecting"


def test_wait_times_out_naming_the_last_screen(agent: FakeAgent, state_dir: Path) -> None:
    agent.publish(screen("server_unreachable"))
    started = time.monotonic()
    result = batm_agent("wait", "in_service", "--timeout", "0.5", "--state-dir", str(state_dir))
    assert result.returncode == 1
    assert time.monotonic() - started >= 0.5
    line = one_line(result.stderr)
    assert "timed out after 0.5 s waiting for screen 'in_service'" in line
    assert "the last screen seen was 'server_unreachable'" in line


def test_wait_times_out_when_the_agent_never_comes(state_dir: Path) -> None:
    result = batm_agent("wait", "in_service", "--timeout", "0.3", "--state-dir", str(state_dir))
    assert result.returncode == 1
    assert "the agent is not running" in one_line(result.stderr)


def test_wait_survives_the_agent_restarting(state_dir: Path) -> None:
    agent = FakeAgent(state_dir)
    process = spawn("wait", "in_service", "--timeout", "60", "--state-dir", str(state_dir))
    try:
        agent.start("upgrading")  # the wait command started before the agent did
        wait_for(lambda: agent.subscribers() == 1, what="the wait command to subscribe")
        agent.stop()  # the restart into the new firmware version
        assert not (state_dir / "control.sock").exists()
        assert process.poll() is None
        agent.start("connecting")
        wait_for(lambda: agent.subscribers() == 1, what="the wait command to resubscribe")
        assert process.poll() is None
        agent.publish(screen("in_service"))
        code, out, err = finish(process)
        assert code == 0, err
        assert one_line(out) == "in_service is showing"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        agent.stop()


def test_wait_unknown_screen_id_lists_the_valid_ones(state_dir: Path) -> None:
    result = batm_agent("wait", "pairing", "--state-dir", str(state_dir))
    assert result.returncode == 2
    assert "unknown screen id 'pairing'" in result.stderr
    for screen_id in ("set_server", "pairing_code", "certificate_mismatch", "in_service"):
        assert screen_id in result.stderr


def test_wait_accepts_admin_screens(agent: FakeAgent, state_dir: Path) -> None:
    result = batm_agent("wait", "admin_pin", "--timeout", "0.2", "--state-dir", str(state_dir))
    assert result.returncode == 1
    assert "'admin_pin'" in one_line(result.stderr)


@pytest.mark.parametrize("args", [[], ["wait"], ["wait", "in_service", "--timeout", "-1"],
                                  ["wait", "in_service", "--timeout", "soon"], ["frobnicate"],
                                  ["run", "--retry-max", "0"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = batm_agent(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_run_help_lists_the_daemon_options() -> None:
    result = batm_agent("run", "--help")
    assert result.returncode == 0
    for option in ("--state-dir", "--hardware-dir", "--slots-dir", "--retry-max", "--log-level"):
        assert option in result.stdout


def test_run_options_reach_the_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import types

    from agent import cli

    seen = {}
    fake = types.ModuleType("agent.daemon")
    fake.run = lambda args: seen.update(vars(args)) or 0
    monkeypatch.setitem(sys.modules, "agent.daemon", fake)
    monkeypatch.setenv("BATM_STATE_DIR", str(tmp_path / "env-state"))
    monkeypatch.setenv("BATM_HARDWARE_DIR", str(tmp_path / "hw"))
    monkeypatch.delenv("BATM_SLOTS_DIR", raising=False)
    assert cli.main(["run", "--retry-max", "2.5", "--log-level", "debug"]) == 0
    assert seen["state_dir"] == str(tmp_path / "env-state")
    assert seen["hardware_dir"] == str(tmp_path / "hw")
    assert seen["slots_dir"] == "/var/lib/batm-slots"
    assert seen["retry_max"] == 2.5
    assert seen["log_level"] == "debug"
    assert cli.main(["run", "--state-dir", "/x"]) == 0
    assert seen["state_dir"] == "/x"


def test_talking_to_the_agent_loads_no_daemon_libraries(agent) -> None:
    """status/screen/wait/set-server start fast: none of them loads what only `run` needs."""
    heavy = ("agent.daemon", "cryptography", "paho", "pyroute2", "httpx", "wireguard_tools")
    probe = "\n".join([
        "import sys",
        "from agent import cli",
        f"cli.main(['status', '--state-dir', {str(agent.state_dir)!r}])",
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r} or m in {heavy!r}))",
    ])
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=30, env=_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
