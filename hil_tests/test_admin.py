"""The advanced administration through the real kiosk window (architecture §2 "technician sets
server host/IP in on-screen advanced administration"), on the rig.

The display runs in its Xvfb; these tests press on it with xdotool exactly where the buttons are
drawn (display.admin.widgets.layout, the function the display itself hit-tests with) and read
what it shows from the screenshot directory: NNN-<screen id>.png per change and screen.json (the
admin page's view: title, message, field text; never PIN digits). The agent is observed through
`batm-agent --state-dir`. Every wait is a wait-for-condition; the one fixed pause is the
technician's finger held down for the long press.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from display.admin import view as v
from display.admin.samples import SAMPLES as ADMIN_SAMPLES
from display.admin.widgets import layout
from hil_tests.rig.prereqs import in_ci
from hil_tests.rig.target import Target

# The display keeps its administration pages open whatever the agent does, and a wipe cannot
# close them: each test gets a rig of its own.
pytestmark = pytest.mark.fresh_rig(display=True)

TIMEOUT = 30.0
NEW_PIN = "482913"
FACTORY_PIN = "000000"
HOLD = 3.5  # the gesture needs 3 s in the corner


class Kiosk:
    """The terminal's screen: the batm-display window on its X display."""

    def __init__(self, target: Target) -> None:
        terminal = target.terminal
        if not terminal.display or not terminal.screenshot_dir:
            message = "this rig has no display window (no Xvfb/xdotool or --no-display)"
            if in_ci():
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        if shutil.which("xdotool") is None:
            message = "xdotool not found: apt-get install xdotool"
            if in_ci():
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        self.env = {**os.environ, "DISPLAY": terminal.display}
        self.shots = Path(terminal.screenshot_dir)
        self.window = self._find_window()
        self.size = self._size()

    def _xdotool(self, *args: str) -> str:
        result = subprocess.run(["xdotool", *args], env=self.env, capture_output=True,
                                text=True, timeout=30)
        assert result.returncode == 0, f"xdotool {' '.join(args)}: {result.stderr}"
        return result.stdout

    def _find_window(self) -> str:
        ids = wait_for(lambda: self._xdotool_quiet("search", "--class", "batm-display").split(),
                       "the batm-display window")
        return ids[0]

    def _xdotool_quiet(self, *args: str) -> str:
        result = subprocess.run(["xdotool", *args], env=self.env, capture_output=True,
                                text=True, timeout=30)
        return result.stdout if result.returncode == 0 else ""

    def _size(self) -> tuple[int, int]:
        out = self._xdotool("getwindowgeometry", "--shell", self.window)
        fields = dict(line.split("=", 1) for line in out.split() if "=" in line)
        return int(fields["WIDTH"]), int(fields["HEIGHT"])

    # -- what it shows ------------------------------------------------------------------------

    def status(self) -> dict:
        try:
            return json.loads((self.shots / "screen.json").read_text())
        except (OSError, ValueError):
            return {}

    def wait_screen(self, screen_id: str, timeout: float = TIMEOUT, **admin_fields) -> dict:
        def shown() -> dict | None:
            status = self.status()
            if status.get("screen") != screen_id:
                return None
            admin = status.get("admin") or {}
            if any(not str(admin.get(k, "")).startswith(val) for k, val in admin_fields.items()):
                return None
            return status
        return wait_for(shown, f"{screen_id} {admin_fields or ''} on the display "
                        f"(showing {self.status()})", timeout)

    # -- touching it --------------------------------------------------------------------------

    def _centre(self, screen_id: str, key: str) -> tuple[int, int]:
        button = layout(ADMIN_SAMPLES[screen_id], self.size).button(key)
        assert button is not None, f"{screen_id} has no button {key!r}"
        return button.rect.center

    def tap(self, screen_id: str, *keys: str) -> None:
        """Tap buttons of the page screen_id (which must be showing)."""
        args: list[str] = []
        for key in keys:
            x, y = self._centre(screen_id, key)
            args += ["mousemove", "--window", self.window, str(x), str(y), "click", "1"]
        self._xdotool(*args)

    def long_press_corner(self) -> None:
        self._xdotool("mousemove", "--window", self.window, "20", "20", "mousedown", "1",
                      "sleep", str(HOLD), "mouseup", "1")

    def type_pin(self, screen_id: str, pin: str) -> None:
        self.tap(screen_id, *[f"digit:{d}" for d in pin], "ok")

    def type_address(self, address: str) -> None:
        self.tap(v.SERVER, "clear", *[f"char:{c}" for c in address])
        self.wait_screen(v.SERVER, field=address)
        self.tap(v.SERVER, "save")


def wait_for(predicate, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def open_admin(kiosk: Kiosk) -> None:
    kiosk.long_press_corner()
    kiosk.wait_screen(v.PIN)


def unlock(kiosk: Kiosk) -> None:
    """From the PIN pad to the menu, changing the factory PIN on first use."""
    kiosk.type_pin(v.PIN, FACTORY_PIN)

    def answered() -> str | None:
        status = kiosk.status()
        admin = status.get("admin") or {}
        if status.get("screen") in (v.CHANGE_PIN, v.MENU):
            return status["screen"]
        if status.get("screen") == v.PIN and admin.get("tone") == "error":
            return "wrong"
        return None

    outcome = wait_for(answered, "the answer to the factory PIN")
    if outcome == "wrong":
        kiosk.type_pin(v.PIN, NEW_PIN)  # the PIN was changed by an earlier test on this rig
    elif outcome == v.CHANGE_PIN:
        assert "factory PIN must be changed" in kiosk.status()["admin"]["prompt"]
        kiosk.type_pin(v.CHANGE_PIN, NEW_PIN)
        kiosk.wait_screen(v.CHANGE_PIN, prompt="Enter the new PIN again")
        kiosk.type_pin(v.CHANGE_PIN, NEW_PIN)
    kiosk.wait_screen(v.MENU)


def screenshot(kiosk: Kiosk, screen_id: str) -> Path:
    found = wait_for(lambda: sorted(kiosk.shots.glob(f"[0-9][0-9][0-9]-{screen_id}.png")),
                     f"a screenshot of {screen_id}")
    return found[-1]


def test_technician_sets_the_server_on_the_kiosk_and_the_terminal_pairs(target: Target) -> None:
    t = target
    kiosk = Kiosk(t)
    t.server.create_terminal(t.serial, "B")
    t.agent.wait_for_screen("set_server", TIMEOUT)

    open_admin(kiosk)
    unlock(kiosk)
    kiosk.tap(v.MENU, "server")
    kiosk.wait_screen(v.SERVER)
    kiosk.type_address(t.gate)
    kiosk.wait_screen(v.MENU, message="Server set to")

    code = t.agent.wait_for_screen("pairing_code", TIMEOUT)["pairing_code"]
    assert t.agent.status()["server"] == t.gate
    request = t.server.wait_for_pairing_request(t.serial, TIMEOUT)
    assert request["code"] == code

    kiosk.tap(v.MENU, "exit")
    status = kiosk.wait_screen("pairing_code")
    assert status["pairing_code"] == code
    for screen_id in (v.PIN, v.CHANGE_PIN, v.MENU, v.SERVER, "pairing_code"):
        screenshot(kiosk, screen_id)


@pytest.mark.parametrize("address, reason", [
    ("192.0.2.1:99999", "the port 99999 is outside 1-65535"),
    ("gate..example", "empty label"),
])
def test_an_invalid_address_is_refused_on_screen_with_the_reason(target: Target, address,
                                                                  reason) -> None:
    t = target
    kiosk = Kiosk(t)
    open_admin(kiosk)
    unlock(kiosk)
    kiosk.tap(v.MENU, "server")
    kiosk.wait_screen(v.SERVER)
    kiosk.type_address(address)
    status = kiosk.wait_screen(v.SERVER, message="Refused: ")
    assert reason in status["admin"]["message"]
    assert status["admin"]["field"] == address  # kept, to be corrected
    assert t.agent.status()["server"] is None
    assert t.agent.screen()["screen"] == "set_server"


def test_five_wrong_pins_lock_the_admin(target: Target) -> None:
    kiosk = Kiosk(target)
    open_admin(kiosk)
    for tries_left in (4, 3, 2, 1):
        kiosk.type_pin(v.PIN, "135792")
        kiosk.wait_screen(v.PIN, message=f"Wrong PIN ({tries_left} tr")
    kiosk.type_pin(v.PIN, "135792")
    status = kiosk.wait_screen(v.LOCKED)
    assert "locked" in status["admin"]["message"]
    screenshot(kiosk, v.LOCKED)
    # The lock is the agent's: leaving and coming back lands on the locked page again, and
    # even the right PIN is not asked for.
    kiosk.tap(v.LOCKED, "exit")
    kiosk.wait_screen("set_server")
    kiosk.long_press_corner()
    kiosk.wait_screen(v.LOCKED)
