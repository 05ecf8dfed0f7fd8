"""`batm-sim demo`: the operator's pairing guide (scenario B, never paired), walked on the rig.

One current-version terminal; the operator creates it on the server; the technician sets the
server on the terminal (here through its serial console); both sides show the same pairing code;
the operator approves in the console, in headless Chromium (the CLI without a browser); the
terminal goes in service. Every screen the display passed through, and every console page, is
saved as a PNG; the screenshots and logs stay in the demo directory after the rig is down.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from sim import lifecycle, prereqs
from sim.browser import chromium_problem
from sim.console_walk import ConsoleWalk
from sim.layout import DEFAULT_VERSION, TerminalSpec
from sim.rigfile import RigFile, load_rig_file
from sim.serial_json import JsonConsole

SERIAL = "BT300042"
TIMEOUT = 30.0
SCREENS_EXPECTED = ("set_server", "connecting", "pairing_code", "in_service")


class DemoFailed(RuntimeError):
    pass


class Demo:
    def __init__(self, rig_dir: Path):
        self.rig_dir = rig_dir
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.2f}s] {text}", flush=True)

    def server_cli(self, rig: RigFile, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            [prereqs.component_command("batm-server"), *args, "--data-dir", rig.server.data_dir],
            capture_output=True, text=True, timeout=60, input=stdin,
        )
        if proc.returncode != 0:
            problem = (proc.stderr or proc.stdout).strip()
            raise DemoFailed(f"batm-server {' '.join(args)}: {problem}")
        return proc.stdout

    def wait_screen(self, console: JsonConsole, screen_id: str) -> dict:
        answer = console.wait(screen_id, TIMEOUT)
        if not answer.get("ok"):
            shown = (answer.get("screen") or {}).get("screen")
            raise DemoFailed(f"the terminal did not show {screen_id} (it shows {shown!r})")
        self.say(f"terminal shows {screen_id}")
        return answer["screen"]

    def wait_screenshot(self, shots: Path, screen_id: str) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if list(shots.glob(f"*-{screen_id}.png")):
                return
            time.sleep(0.1)

    def run(self) -> int:
        self.say(f"bringing up a rig in {self.rig_dir} (scenario B, one terminal {SERIAL}, "
                 f"version {DEFAULT_VERSION})")
        display = not prereqs.missing_components(
            skip=("batm-server", "batm-agent", "batm-console"))
        if not display:
            self.say("batm-display is not installed: no screens, no screenshots")
        result = lifecycle.up(self.rig_dir, [TerminalSpec(SERIAL, DEFAULT_VERSION)], "B",
                              display=display)
        for part in result.left_out:
            self.say(f"left out: {part}")
        self.say(f"rig up in {result.seconds:.1f}s")
        try:
            return self.walk(load_rig_file(result.rig_file))
        finally:
            lifecycle.down(self.rig_dir)
            self.say("rig down; screenshots and logs kept")

    def walk(self, rig: RigFile) -> int:
        terminal = rig.terminal(SERIAL)
        self.say(f"operator: batm-server terminal create {SERIAL} --scenario B")
        self.server_cli(rig, "terminal", "create", SERIAL, "--scenario", "B")
        console = JsonConsole(terminal.console)
        try:
            self.wait_screen(console, "set_server")
            gate = rig.server.gate_address
            self.say(f"technician (serial console {terminal.console}): set-server {gate}")
            console.ok(f"set-server {gate}")
            screen = self.wait_screen(console, "pairing_code")
            terminal_code = screen["pairing_code"]
            requests = json.loads(self.server_cli(rig, "pairing", "list", "--json"))
            mine = [r for r in requests if r["serial"] == SERIAL]
            deadline = time.monotonic() + TIMEOUT
            while not (mine and mine[-1].get("code")) and time.monotonic() < deadline:
                time.sleep(0.1)
                requests = json.loads(self.server_cli(rig, "pairing", "list", "--json"))
                mine = [r for r in requests if r["serial"] == SERIAL]
            server_code = mine[-1]["code"] if mine else None
            print(f"\n    pairing code on the terminal:          {terminal_code}")
            print(f"    pairing code in the server's requests: {server_code}"
                  f"  (from {mine[-1]['peer'] if mine else '?'})\n")
            if terminal_code != server_code:
                raise DemoFailed("the codes differ: the connection is intercepted; not approving")
            console_shots = self.approve(rig, terminal_code)
            self.wait_screen(console, "in_service")
        finally:
            console.close()
        return self.report(terminal.screenshot_dir, console_shots)

    def approve(self, rig: RigFile, code: str) -> list[Path]:
        """In the console in headless Chromium when there is one, else with the CLI."""
        problem = chromium_problem() if rig.server.console_url else "no console in rig.json"
        if problem:
            self.say(f"no browser walk ({problem}); approving with the CLI")
            self.say(f"operator: batm-server pairing approve {SERIAL} --code {code}")
            self.server_cli(rig, "pairing", "approve", SERIAL, "--code", code)
            return []
        terminal = rig.terminal(SERIAL)
        shots = Path(terminal.screenshot_dir) if terminal.screenshot_dir else (
            self.rig_dir / "console-screenshots")
        walk = ConsoleWalk(rig, shots, self.say,
                           lambda *args, stdin=None: self.server_cli(rig, *args, stdin=stdin),
                           self.rig_dir)
        try:
            walk.approve(SERIAL, code)
        except Exception as exc:  # Playwright's errors: say which step, keep the shots
            raise DemoFailed(f"the console walk failed: {exc}") from exc
        return walk.taken

    def report(self, screenshot_dir: str | None, console_shots: list[Path]) -> int:
        if console_shots:
            print("\nconsole screenshots (one per page the operator passed through):")
            for f in console_shots:
                print(f"    {f}")
        if not screenshot_dir:
            self.say("no display in this rig: no screenshots")
            return 0
        shots = Path(screenshot_dir)
        self.wait_screenshot(shots, "in_service")
        files = sorted(f for f in shots.glob("[0-9][0-9][0-9]-*.png"))
        print("\nscreenshots (one per screen the terminal passed through):")
        for f in files:
            print(f"    {f}")
        seen = {f.stem.split("-", 1)[1] for f in files if "-" in f.stem}
        missing = [s for s in SCREENS_EXPECTED if s not in seen]
        print(f"\nsummary: terminal {SERIAL} paired with the server and is in service; "
              f"{len(files)} screenshot(s) in {shots}; logs in {self.rig_dir / 'logs'}")
        if missing:
            print(f"note: no screenshot of {', '.join(missing)}")
        return 0


def run_demo(rig_dir: str) -> int:
    try:
        return Demo(Path(rig_dir).absolute()).run()
    except DemoFailed as exc:
        print(f"batm-sim demo: {exc}", file=sys.stderr)
        return 1
