"""batm-display end to end on SDL's dummy driver: screenshots per change, idle, clean exit."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import signal
import subprocess
import sys
import time
from pathlib import Path

import display_window
import pygame
import pytest
from waiting import wait_for as wait_until

from display.app import Display, build_parser, parse_size
from display.fake_agent import FakeAgent
from display.preview import SAMPLES
from display.screenshots import ScreenshotWriter

window = display_window.window  # the shared pygame-window fixture


def display_command() -> list[str]:
    script = Path(sys.executable).parent / "batm-display"
    return [str(script)] if script.exists() else [sys.executable, "-m", "display.app"]


def pngs(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("[0-9]*.png"))


# --- the UI-thread logic, in process ---------------------------------------------------------

def test_screenshot_on_change_and_not_on_an_identical_model(window, tmp_path):
    display = Display(window, ScreenshotWriter(tmp_path))
    assert pngs(tmp_path) == ["001-starting.png"]
    display.agent_screen(SAMPLES["connecting"])
    assert pngs(tmp_path)[-1] == "002-connecting.png"
    # Same content, new seq and time: nothing to redraw, no screenshot.
    display.agent_screen({**SAMPLES["connecting"], "seq": 99, "changed_at": 1e9})
    assert len(pngs(tmp_path)) == 2
    display.agent_screen({**SAMPLES["pairing_code"], "pairing_code": "AAAA-BBBB"})
    display.agent_screen({**SAMPLES["pairing_code"], "pairing_code": "AAAA-CCCC"})
    assert pngs(tmp_path)[-2:] == ["003-pairing_code.png", "004-pairing_code.png"]
    latest = pygame.image.load(str(tmp_path / "latest.png"))
    assert latest.get_size() == (800, 480)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_agent_down_keeps_the_last_known_serial(window, tmp_path):
    display = Display(window, None)
    display.agent_screen(SAMPLES["in_service"])
    display.agent_down("control socket /x/control.sock: Connection refused")
    assert display.model.screen == "agent_unreachable"
    assert display.model.serial == SAMPLES["in_service"]["serial"]
    assert "Connection refused" in display.model.detail


@pytest.mark.parametrize("raw", [None, "x", [1], {"screen": {"nested": True}},
                                 {"screen": "pairing_code", "pairing_code": ["A"]}])
def test_bad_model_data_is_shown_not_raised(window, raw):
    display = Display(window, None)
    display.agent_screen(raw)  # must not raise
    assert display.model is not None


def test_screenshot_numbering_continues_after_a_restart(window, tmp_path):
    (tmp_path / "041-in_service.png").write_bytes(b"old")
    writer = ScreenshotWriter(tmp_path)
    path = writer.save(window, "vpn_error")
    assert path.name == "042-vpn_error.png"


def test_cli_options():
    args = build_parser().parse_args(["--state-dir", "/s", "--screenshot-dir", "/o",
                                      "--size", "1024x600", "--fullscreen"])
    assert (str(args.state_dir), str(args.screenshot_dir), args.size, args.fullscreen) == (
        "/s", "/o", (1024, 600), True)
    assert build_parser().parse_args([]).size == (800, 480)
    assert parse_size("480X800") == (480, 800)


def test_state_dir_default_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("BATM_STATE_DIR", "/from/env")
    assert str(build_parser().parse_args([]).state_dir) == "/from/env"
    monkeypatch.delenv("BATM_STATE_DIR")
    assert str(build_parser().parse_args([]).state_dir) == "/var/lib/batm-agent"


@pytest.mark.parametrize("size", ["10x10", "800", "wide", "800x480x2"])
def test_bad_size_is_a_clear_error(size):
    result = subprocess.run([*display_command(), "--size", size], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert "--size" in result.stderr and "Traceback" not in result.stderr


# --- the real program ------------------------------------------------------------------------

def main_thread_switches(pid: int) -> int:
    status = Path(f"/proc/{pid}/task/{pid}/status").read_text()
    return sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line)


def run_display(tmp_path, env_extra=None):
    state, shots = tmp_path / "state", tmp_path / "shots"
    state.mkdir(exist_ok=True)
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", **(env_extra or {})}
    proc = subprocess.Popen(
        [*display_command(), "--state-dir", str(state), "--screenshot-dir", str(shots)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, state, shots


def stop_display(proc) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"batm-display did not exit on SIGTERM\n{out}\n{err}")
    return out, err


def test_real_display_follows_the_agent_and_exits_cleanly(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    agent = FakeAgent(state / "control.sock", SAMPLES["connecting"]).start()
    proc, _, shots = run_display(tmp_path)
    try:
        wait_until(lambda: "001-starting.png" in pngs(shots) and "002-connecting.png"
                   in pngs(shots), what="the first screenshots")
        for n, screen_id in enumerate(["pairing_code", "in_service"], start=3):
            agent.publish(SAMPLES[screen_id])
            wait_until(lambda n=n, s=screen_id: f"{n:03d}-{s}.png" in pngs(shots),
                       what=f"{screen_id} screenshot")
        # Malformed data from the agent: shown as a fallback screen, not a crash.
        agent.publish({"screen": ["bad"], "title": {"x": 1}, "progress": "lots"})
        wait_until(lambda: len(pngs(shots)) == 5, what="malformed-model screenshot")
        agent.publish(SAMPLES["vpn_error"])
        wait_until(lambda: pngs(shots)[-1] == "006-vpn_error.png", what="vpn_error")
        agent.publish({**SAMPLES["vpn_error"], "seq": 1234})  # identical content: no new file
        agent.publish(SAMPLES["upgrading"])
        wait_until(lambda: pngs(shots)[-1] == "007-upgrading.png", what="upgrading")

        # Idle costs nothing: the UI thread sleeps (pygame.event.wait would wake ~1000/s).
        before = main_thread_switches(proc.pid)
        time.sleep(1.5)
        assert main_thread_switches(proc.pid) - before < 20

        agent.stop()
        wait_until(lambda: pngs(shots)[-1].endswith("agent_unreachable.png"),
                   what="agent_unreachable after the agent went away")
        assert proc.poll() is None
    finally:
        agent.stop()
        out, err = stop_display(proc)
    assert proc.returncode == 0, err
    assert "SDL video driver dummy" in out
    assert "Traceback" not in err and "Traceback" not in out


def test_sigint_also_exits_cleanly(tmp_path):
    proc, _, shots = run_display(tmp_path)
    wait_until(lambda: "001-starting.png" in pngs(shots), what="startup")
    proc.send_signal(signal.SIGINT)
    _out, err = stop_display(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
