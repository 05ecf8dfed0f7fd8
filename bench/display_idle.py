"""Display benchmark: idle CPU of the real batm-display under Xvfb, and render time per screen.

    .venv/bin/python bench/display_idle.py [--seconds 10] [--runs 20] [--json]

Idle: batm-display runs in an Xvfb against display.fake_agent.FakeAgent (one pairing_code screen,
no changes), and its CPU time (utime+stime of every thread, /proc/<pid>/stat) is read over
--seconds once it has drawn; the main thread's context switches count its wake-ups. Measured
twice: on the terminal screen, and with the admin open on its PIN page (Ctrl+Alt+A via xdotool;
the admin's 60 s idle timer must not make it poll). Target: under 3 % of one core.

Render: every screen of display.contact_sheet.screens() drawn --runs times on an 800x480 surface
(SDL dummy driver, in this process): the first (cold: fonts being opened) and the median of the
others, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

TARGET_PERCENT = 3.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main_thread_switches(pid: int) -> int:
    status = Path(f"/proc/{pid}/task/{pid}/status").read_text()
    return sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"display_idle: timed out waiting for {what}")
        time.sleep(0.02)


def start_xvfb() -> tuple[subprocess.Popen, str, int]:
    """Xvfb on a display number it picks itself; the -displayfd pipe stays open while it runs
    (Xvfb dies of SIGPIPE if it finds it closed)."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-nolisten", "tcp",
                             "-screen", "0", "800x480x24"], pass_fds=(write_fd,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    ready, _, _ = select.select([read_fd], [], [], 15)
    number = os.read(read_fd, 64).decode().strip() if ready else ""
    if not number:
        proc.kill()
        raise SystemExit("display_idle: Xvfb did not start")
    return proc, f":{number}", read_fd


def measure(pid: int, seconds: float) -> dict:
    cpu0, sw0, t0 = cpu_seconds(pid), main_thread_switches(pid), time.monotonic()
    time.sleep(seconds)
    cpu1, sw1, t1 = cpu_seconds(pid), main_thread_switches(pid), time.monotonic()
    wall = t1 - t0
    return {"seconds": round(wall, 2), "cpu_percent": round(100 * (cpu1 - cpu0) / wall, 3),
            "wakeups_per_second": round((sw1 - sw0) / wall, 2)}


def idle_benchmark(seconds: float) -> dict:
    from display.fake_agent import FakeAgent
    from display.preview import SAMPLES

    if shutil.which("Xvfb") is None:
        raise SystemExit("display_idle: Xvfb not found (apt-get install xvfb)")
    xvfb, display, xvfb_fd = start_xvfb()
    work = Path(tempfile.mkdtemp(prefix="batm-display-bench-"))
    agent = FakeAgent(work / "control.sock", SAMPLES["pairing_code"]).start()
    env = {k: v for k, v in os.environ.items() if k not in ("SDL_VIDEODRIVER", "WAYLAND_DISPLAY")}
    env.update(DISPLAY=display, SDL_VIDEODRIVER="x11", SDL_AUDIODRIVER="dummy")
    script = Path(sys.executable).parent / "batm-display"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "display.app"]
    shots = work / "shots"
    proc = subprocess.Popen([*command, "--state-dir", str(work), "--screenshot-dir", str(shots)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = {}
    try:
        wait_until(lambda: any(shots.glob("*-pairing_code.png")), 20, "the first screen")
        time.sleep(1.0)  # let start-up work (font loading, first flip) finish
        results["terminal screen"] = measure(proc.pid, seconds)
        if shutil.which("xdotool"):
            window = subprocess.run(["xdotool", "search", "--class", "batm-display"], env=env,
                                    capture_output=True, text=True, timeout=10).stdout.split()
            if window:
                subprocess.run(["xdotool", "windowfocus", "--sync", window[0], "key",
                                "--window", window[0], "ctrl+alt+a"], env=env, timeout=10)
                wait_until(lambda: any(shots.glob("*-admin_pin.png")), 20, "the admin PIN page")
                time.sleep(1.0)
                results["admin PIN page"] = measure(proc.pid, seconds)
    finally:
        proc.terminate()
        proc.wait(10)
        agent.stop()
        xvfb.terminate()
        xvfb.wait(10)
        os.close(xvfb_fd)
        shutil.rmtree(work, ignore_errors=True)
    return results


def render_benchmark(runs: int) -> dict:
    os.environ["SDL_VIDEODRIVER"] = "dummy"
    import pygame

    from display import fonts
    from display.contact_sheet import screens

    pygame.font.init()
    fonts.clear_cache()
    results = {}
    for name, size, draw in screens():
        surface = pygame.Surface(size)
        times = []
        for _ in range(max(2, runs)):
            start = time.perf_counter()
            draw(surface)
            times.append((time.perf_counter() - start) * 1000)
        results[name] = {"first_ms": round(times[0], 2),
                         "median_ms": round(statistics.median(times[1:]), 2),
                         "max_ms": round(max(times[1:]), 2)}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="idle measurement period")
    parser.add_argument("--runs", type=int, default=20, help="renders per screen")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    idle = idle_benchmark(args.seconds)
    render = render_benchmark(args.runs)
    if args.json:
        print(json.dumps({"idle": idle, "render": render}, indent=1))
    else:
        print(f"idle CPU of batm-display under Xvfb ({args.seconds:g} s each; target "
              f"< {TARGET_PERCENT:g} % of one core):")
        for what, m in idle.items():
            verdict = "ok" if m["cpu_percent"] < TARGET_PERCENT else "OVER TARGET"
            print(f"  {what:18s} {m['cpu_percent']:6.2f} % CPU   "
                  f"{m['wakeups_per_second']:6.2f} main-thread wake-ups/s   {verdict}")
        print(f"render time per screen (ms; {args.runs} renders, 800x480 unless portrait):")
        print(f"  {'screen':32s} {'first':>7s} {'median':>7s} {'max':>7s}")
        for name, r in render.items():
            print(f"  {name:32s} {r['first_ms']:7.1f} {r['median_ms']:7.1f} {r['max_ms']:7.1f}")
    over = [w for w, m in idle.items() if m["cpu_percent"] >= TARGET_PERCENT]
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
