"""The advanced administration on the display: controller against the real AdminService, the
hidden gesture, hit tests through the real layout, screenshots and screen.json."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import json

import display_window
import pygame
import pytest

from agent.admin.service import AdminService
from batm_common.hostaddr import parse_server_address
from display import fonts
from display.admin import view as v
from display.admin.controller import AdminController
from display.host import Display
from display.input import Key, Pointer
from display.model import ScreenModel
from display.preview import SAMPLES
from display.screenshots import ScreenshotWriter

window = display_window.window  # the shared pygame-window fixture

FAST = {"n": 2**4, "r": 8, "p": 1}
NEW_PIN = "482913"


class Agent:
    """The agent side: a real AdminService, answering synchronously or on demand."""

    def __init__(self, state_dir, deferred: bool = False) -> None:
        self.server: str | None = None
        self.now = 0.0
        self.service = AdminService(
            state_dir, status=lambda: {"serial": "BT1", "version": 20230801, "state": "x"},
            set_server=self.set_server, reboot=lambda: None, scrypt_params=FAST,
            clock=lambda: self.now, wall_clock=lambda: 1e9 + self.now,
            network=lambda: {"interfaces": [], "gateway": "192.0.2.1", "dns": ["192.0.2.53"]})
        self.deferred = deferred
        self.pending: list = []
        self.sent: list[dict] = []

    def set_server(self, address: str) -> str:
        self.server = str(parse_server_address(address))
        return self.server

    def send(self, message: dict, on_answer) -> None:
        self.sent.append(message)
        answer = self.service.handle(message["cmd"], message)
        if self.deferred:
            self.pending.append((on_answer, answer))
        else:
            on_answer(answer)

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        for on_answer, answer in pending:
            on_answer(answer)


@pytest.fixture
def agent(tmp_path) -> Agent:
    return Agent(tmp_path)


def tap(admin: AdminController, *keys: str, now: float = 0.0) -> None:
    for key in keys:
        admin.activate(key, now)


def digits(pin: str) -> list[str]:
    return [f"digit:{d}" for d in pin]


def unlocked(agent: Agent) -> AdminController:
    admin = AdminController(agent.send, terminal=lambda: ScreenModel(
        screen="pairing_code", pairing_code="7KQ3-M9XP", serial="BT1", server="192.0.2.9:8443"))
    admin.open(0)
    tap(admin, *digits("000000"), "ok")
    assert admin.view().screen == v.CHANGE_PIN and "factory PIN" in admin.view().prompt
    tap(admin, *digits(NEW_PIN), "ok", *digits(NEW_PIN), "ok")
    assert admin.view().screen == v.MENU and admin.view().message == "PIN changed."
    return admin


def test_first_use_forces_a_new_pin_and_checks_the_confirmation(agent):
    admin = AdminController(agent.send)
    admin.open(0)
    tap(admin, *digits("000000"), "ok")
    tap(admin, *digits(NEW_PIN), "ok", *digits("482914"), "ok")
    assert admin.view().screen == v.CHANGE_PIN and "differ" in admin.view().message
    tap(admin, *digits("555555"), "ok", *digits("555555"), "ok")
    view = admin.view()
    assert view.tone == "error" and "repeat one digit" in view.message  # the agent's reason
    tap(admin, "cancel")  # while the factory PIN is in use, cancel leaves (and locks)
    assert not admin.active
    assert agent.sent[-1]["cmd"] == "admin_lock"


def test_server_address_refused_with_the_reason_then_saved(agent):
    admin = unlocked(agent)
    tap(admin, "server")
    assert admin.view().field == "192.0.2.9:8443"  # starts from the current server
    tap(admin, "clear", *[f"char:{c}" for c in "192.0.2.1:99999"], "save")
    view = admin.view()
    assert view.screen == v.SERVER and view.field == "192.0.2.1:99999"
    assert view.message == "Refused: the port 99999 is outside 1-65535" and view.tone == "error"
    assert agent.server is None
    tap(admin, "del", "del", "del", "del", "del", *[f"char:{c}" for c in "8443"], "save")
    view = admin.view()
    assert view.screen == v.MENU and view.tone == "ok" and "192.0.2.1:8443" in view.message
    assert agent.server == "192.0.2.1:8443"


def test_five_wrong_pins_lock_with_a_countdown_and_unlock_after_it(agent):
    admin = AdminController(agent.send)
    admin.open(0)
    for _ in range(5):
        tap(admin, *digits("123123"), "ok")
    view = admin.view()
    assert view.screen == v.LOCKED and "0:30" in view.message
    assert admin.deadline() == pytest.approx(1.001)
    admin.tick(10.2)
    assert "0:20" in admin.view().message
    admin.tick(30.0)
    assert admin.view().screen == v.PIN and "try the PIN again" in admin.view().message
    # Opening the admin again while the agent is locked goes straight to the locked page.
    for _ in range(1):
        tap(admin, *digits("123123"), "ok", now=30.5)
    admin.close()
    admin.open(31)
    assert admin.view().screen == v.LOCKED


def test_idle_timeout_leaves_and_ends_the_agent_session(agent):
    admin = unlocked(agent)
    session = admin.session
    admin.touched(50)
    admin.tick(109)
    assert admin.active
    admin.tick(110)
    assert not admin.active
    assert agent.service.handle("admin_info", {"session": session})["code"] == "session"


def test_info_pages_and_pairing_page(agent):
    admin = unlocked(agent)
    tap(admin, "terminal")
    assert ("Serial", "BT1") in admin.view().rows
    tap(admin, "back", "network")
    assert ("Gateway", "192.0.2.1") in admin.view().rows
    tap(admin, "back", "vpn")
    assert ("State", "not configured") in admin.view().rows
    tap(admin, "back", "pairing")
    view = admin.view()
    assert ("Pairing code", "7KQ3-M9XP") in view.rows and "BT1" in view.qr


def test_answers_arrive_later_and_busy_ignores_taps(tmp_path):
    agent = Agent(tmp_path, deferred=True)
    admin = AdminController(agent.send)
    admin.open(0)
    agent.flush()
    tap(admin, *digits("000000"), "ok")
    assert admin.view().busy and admin.view().message == "Checking..."
    tap(admin, "cancel")  # ignored while the agent checks
    assert admin.active
    agent.flush()
    assert admin.view().screen == v.CHANGE_PIN and not admin.view().busy


def test_an_answer_after_leaving_is_ignored(tmp_path):
    agent = Agent(tmp_path, deferred=True)
    admin = AdminController(agent.send)
    admin.open(0)
    tap(admin, *digits("000000"), "ok")
    admin.close()
    agent.flush()
    assert not admin.active and admin.session is None


def test_reboot_needs_confirmation(agent):
    admin = unlocked(agent)
    tap(admin, "reboot")
    assert admin.view().buttons == ("cancel", "confirm")
    tap(admin, "cancel")
    assert admin.view().screen == v.MENU
    tap(admin, "reboot", "confirm")
    assert admin.view().prompt.startswith("Restarting") and admin.view().buttons == ()


def test_physical_keyboard(agent):
    admin = AdminController(agent.send)
    admin.open(0)
    for ch in "000000":
        admin.type_text(ch, 0)
    admin.keyboard_action("enter", 0)
    assert admin.view().screen == v.CHANGE_PIN
    admin.keyboard_action("escape", 0)
    assert not admin.active


# --- on a window: gesture, hit tests, screenshots --------------------------------------------

def press_button(display: Display, key: str, now: float = 0.0) -> None:
    button = display.layout.button(key)
    assert button is not None, f"no button {key!r} on {display.showing}"
    display.pointer(Pointer("down", button.rect.center), now)
    display.pointer(Pointer("up", button.rect.center), now)


def test_long_press_in_the_corner_opens_the_admin(window, agent):
    display = Display(window, send=agent.send)
    display.agent_screen(SAMPLES["set_server"])
    display.pointer(Pointer("down", (20, 20)), now=100.0)
    assert display.next_deadline() == 103.0
    display.tick(102.9)
    assert display.showing == "set_server"
    display.tick(103.0)
    assert display.showing == v.PIN
    display.pointer(Pointer("up", (20, 20)), now=103.5)  # letting go presses nothing
    assert display.admin.view().pin_length == 0


@pytest.mark.parametrize("steps", [
    [("down", (20, 20), 0), ("up", (20, 20), 2.0)],  # too short
    [("down", (20, 20), 0), ("move", (300, 200), 1.0)],  # slid out of the corner
    [("down", (400, 240), 0)],  # not in the corner
])
def test_brief_or_misplaced_presses_do_not_open_the_admin(window, agent, steps):
    display = Display(window, send=agent.send)
    for kind, pos, t in steps:
        display.pointer(Pointer(kind, pos), now=t)
    display.tick(10.0)
    assert not display.admin.active


def test_ctrl_alt_a_opens_and_the_screen_returns_after_exit(window, agent):
    display = Display(window, send=agent.send)
    display.agent_screen(SAMPLES["connecting"])
    display.key(Key(pygame.K_a, pygame.KMOD_LCTRL | pygame.KMOD_LALT, "a"), now=0)
    assert display.showing == v.PIN
    display.agent_screen(SAMPLES["pairing_code"])  # kept while the admin is up
    assert display.showing == v.PIN
    press_button(display, "cancel")
    assert display.showing == "pairing_code"


def test_taps_through_the_layout_and_screenshots_without_digits(window, agent, tmp_path):
    shots = tmp_path / "shots"
    display = Display(window, ScreenshotWriter(shots), send=agent.send)
    display.key(Key(pygame.K_a, pygame.KMOD_CTRL | pygame.KMOD_ALT, "a"), now=0)
    for d in "000000":
        press_button(display, f"digit:{d}")
    status = json.loads((shots / "screen.json").read_text())
    assert status["screen"] == v.PIN and status["admin"]["pin_length"] == 6
    assert "000000" not in (shots / "screen.json").read_text()
    press_button(display, "ok")
    assert display.showing == v.CHANGE_PIN
    names = sorted(p.name for p in shots.glob("[0-9]*.png"))
    assert names[0] == "001-starting.png" and names[-1].endswith("-admin_change_pin.png")
    # Pressing highlights the button but only a visible change of content is a screenshot.
    count = len(names)
    button = display.layout.button("digit:1")
    display.pointer(Pointer("down", button.rect.center), 0)
    assert display.admin.view().pressed == "digit:1"
    display.pointer(Pointer("move", (5, 470)), 0)  # slide off: no activation
    display.pointer(Pointer("up", (5, 470)), 0)
    assert display.admin.view().pin_length == 0
    assert len(list(shots.glob("[0-9]*.png"))) == count


def test_rotated_panel_maps_touches_to_the_upright_buttons(agent):
    from display.input import InputMapper

    pygame.display.init()
    pygame.font.init()
    try:
        window = pygame.display.set_mode((800, 480))
        display = Display(window, send=agent.send, rotation=90)
        assert display.canvas.get_size() == (480, 800)
        display.key(Key(pygame.K_a, pygame.KMOD_CTRL | pygame.KMOD_ALT, "a"), now=0)
        mapper = InputMapper((800, 480), 90)
        lx, ly = display.layout.button("digit:7").rect.center
        px, py = 800 - 1 - ly, lx  # where the upright point lands on the panel
        for etype in (pygame.FINGERDOWN, pygame.FINGERUP):
            event = pygame.event.Event(etype, x=px / 800, y=py / 480, touch_id=1, finger_id=0)
            display.pointer(mapper.map(event), 0)
        assert display.admin.view().pin_length == 1
    finally:
        fonts.clear_cache()
        pygame.quit()
