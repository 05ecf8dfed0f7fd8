"""Touch input, rotation, target sizes, the QR code and the video-driver check."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import subprocess
import sys
from pathlib import Path

import pygame
import pytest

from display.admin import view as v
from display.admin.samples import SAMPLES as ADMIN
from display.admin.widgets import MIN_TARGET, layout
from display.input import InputMapper, Key, Pointer, is_admin_shortcut, logical_size, to_logical
from display.qr import QUIET_ZONE, draw_qr, matrix, pairing_payload
from display.video import driver_problem, wanted_driver

FINGER = dict(touch_id=1, finger_id=0, dx=0.0, dy=0.0, pressure=1.0)


def finger(kind, x, y, **extra):
    etype = {"down": pygame.FINGERDOWN, "move": pygame.FINGERMOTION, "up": pygame.FINGERUP}[kind]
    return pygame.event.Event(etype, x=x, y=y, **{**FINGER, **extra})


def mouse(kind, pos, touch=False, button=1):
    etype = {"down": pygame.MOUSEBUTTONDOWN, "up": pygame.MOUSEBUTTONUP}[kind]
    return pygame.event.Event(etype, pos=pos, button=button, touch=touch)


def test_finger_coordinates_are_normalised_and_scaled_to_the_window():
    mapper = InputMapper((800, 480))
    assert mapper.map(finger("down", 0.5, 0.25)) == Pointer("down", (400, 120))
    assert mapper.map(finger("move", 1.0, 1.0)) == Pointer("move", (799, 479))  # clamped
    assert mapper.map(finger("up", 0.0, 0.0)) == Pointer("up", (0, 0))


def test_synthesized_mouse_events_are_ignored_and_real_ones_work():
    mapper = InputMapper((800, 480))
    assert mapper.map(finger("down", 0.5, 0.5)) is not None
    assert mapper.map(mouse("down", (400, 240), touch=True)) is None  # SDL's copy of the touch
    assert mapper.map(mouse("up", (400, 240), touch=True)) is None
    assert mapper.map(finger("up", 0.5, 0.5)).kind == "up"
    assert mapper.map(mouse("down", (10, 20))) == Pointer("down", (10, 20))
    assert mapper.map(mouse("up", (10, 20), button=3)) is None  # right button: not a tap
    assert mapper.map(mouse("up", (11, 21))) == Pointer("up", (11, 21))


def test_only_the_first_finger_is_followed():
    mapper = InputMapper((800, 480))
    assert mapper.map(finger("down", 0.1, 0.1)).kind == "down"
    assert mapper.map(finger("down", 0.9, 0.9, finger_id=1)) is None
    assert mapper.map(finger("up", 0.9, 0.9, finger_id=1)) is None
    assert mapper.map(finger("up", 0.1, 0.1)).kind == "up"


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_rotation_mapping_matches_what_is_drawn(rotation):
    """Mark one pixel on the upright canvas, turn the canvas the way the display does, and
    check that touching where the mark landed maps back to the mark."""
    window = (800, 480)
    canvas = pygame.Surface(logical_size(window, rotation))
    mark = (37, 101)
    canvas.fill((0, 0, 0))
    canvas.set_at(mark, (255, 255, 255))
    turned = pygame.transform.rotate(canvas, -rotation)
    assert turned.get_size() == window
    landed = pygame.mask.from_threshold(turned, (255, 255, 255), (1, 1, 1, 255)) \
        .get_bounding_rects()[0].topleft
    assert to_logical(landed, window, rotation) == mark
    mapper = InputMapper(window, rotation)
    event = finger("down", (landed[0] + 0.5) / window[0], (landed[1] + 0.5) / window[1])
    assert mapper.map(event).pos == mark


def test_a_bad_rotation_is_refused():
    with pytest.raises(ValueError, match="rotation"):
        InputMapper((800, 480), 45)


def test_ctrl_alt_a_is_the_shortcut_and_nothing_less():
    assert is_admin_shortcut(Key(pygame.K_a, pygame.KMOD_LCTRL | pygame.KMOD_RALT, "a"))
    assert not is_admin_shortcut(Key(pygame.K_a, pygame.KMOD_LCTRL, "a"))
    assert not is_admin_shortcut(Key(pygame.K_b, pygame.KMOD_CTRL | pygame.KMOD_ALT, "b"))


@pytest.mark.parametrize("size", [(800, 480), (480, 800)])
@pytest.mark.parametrize("screen", list(ADMIN))
def test_every_touch_target_is_at_least_9_mm_and_inside_the_screen(screen, size):
    lay = layout(ADMIN[screen], size)
    screen_rect = pygame.Rect((0, 0), size)
    assert lay.buttons
    for button in lay.buttons:
        assert button.rect.w >= MIN_TARGET and button.rect.h >= MIN_TARGET, button
        assert screen_rect.contains(button.rect), button
    for i, a in enumerate(lay.buttons):
        for b in lay.buttons[i + 1:]:
            assert not a.rect.colliderect(b.rect), (a.key, b.key)


@pytest.mark.parametrize("size", [(800, 480), (480, 800)])
def test_the_keyboard_has_every_character_an_address_needs(size):
    keys = {b.key for b in layout(ADMIN[v.SERVER], size).buttons}
    assert {f"char:{c}" for c in "0123456789abcdefghijklmnopqrstuvwxyz.:-[]"} <= keys
    assert {"del", "clear", "save", "back"} <= keys


def test_qr_code_drawn_module_by_module():
    pygame.init()
    text = pairing_payload("7KQ3-M9XP", "BT300412")
    assert text == "batm:pair?code=7KQ3-M9XP&serial=BT300412"
    surface = pygame.Surface((300, 300))
    drawn = draw_qr(surface, surface.get_rect(), text)
    cells = matrix(text)
    module = drawn.w // (len(cells) + 2 * QUIET_ZONE)
    assert module >= 2
    for y, row in enumerate(cells):
        for x, dark in enumerate(row):
            centre = (drawn.x + (x + QUIET_ZONE) * module + module // 2,
                      drawn.y + (y + QUIET_ZONE) * module + module // 2)
            assert surface.get_at(centre)[:3] == ((0, 0, 0) if dark else (255, 255, 255))


# --- the video driver -----------------------------------------------------------------------

def test_a_pi_without_x_asks_for_kmsdrm(tmp_path):
    assert wanted_driver({}, dri=tmp_path) == ("kmsdrm", False)
    assert wanted_driver({}, dri=tmp_path / "none") == (None, False)
    assert wanted_driver({"DISPLAY": ":0"}, dri=tmp_path) == (None, False)
    assert wanted_driver({"SDL_VIDEODRIVER": "x11"}, dri=tmp_path) == ("x11", True)


def test_which_drivers_are_refused():
    assert "got 'offscreen'" in driver_problem("kmsdrm", False, "offscreen")
    assert driver_problem("kmsdrm", False, "kmsdrm") is None
    assert "'dummy'" in driver_problem(None, False, "dummy")
    assert driver_problem("dummy", True, "dummy") is None  # asked for on purpose (tests)
    assert driver_problem(None, False, "x11") is None


def display_command() -> list[str]:
    script = Path(sys.executable).parent / "batm-display"
    return [str(script)] if script.exists() else [sys.executable, "-m", "display.app"]


def test_a_silent_fallback_driver_stops_the_display_with_its_name(tmp_path):
    env = {k: val for k, val in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    result = subprocess.run([*display_command(), "--state-dir", str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "refusing to start" in result.stderr or "cannot open a window" in result.stderr
    assert "driver" in result.stderr and "Traceback" not in result.stderr
