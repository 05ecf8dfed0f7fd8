"""Golden screenshots: every screen (terminal and admin, plus portrait cases) compared with
tests/golden/<name>.png within a small tolerance.

Regenerate on purpose, after a deliberate change of the look, and review the diff of the PNGs:

    BATM_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_display_golden.py

A mismatch writes <name>.actual.png and <name>.diff.png (differing pixels in magenta) next to
the test's tmp_path and names them in the failure.
"""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

from pathlib import Path

import pygame
import pytest

from display import fonts
from display.contact_sheet import screens

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("BATM_UPDATE_GOLDEN") == "1"
# A pixel differs when a channel is off by more than CHANNEL_TOLERANCE (anti-aliasing and
# FreeType versions move edges by a few levels); a screen matches when at most
# PIXEL_FRACTION of its pixels differ (38 px of 800x480: one letter changed from "OK" to "Ok"
# is ~140).
CHANNEL_TOLERANCE = 40
PIXEL_FRACTION = 0.0001

CASES = [(name, size) for name, size, _ in screens()]


@pytest.fixture(scope="module", autouse=True)
def fonts_ready():
    pygame.font.init()
    yield
    fonts.clear_cache()


def differing_pixels(a: pygame.Surface, b: pygame.Surface) -> tuple[int, pygame.Surface]:
    """How many pixels differ beyond the tolerance, and a mask image of them."""
    up = a.copy()
    up.blit(b, (0, 0), special_flags=pygame.BLEND_RGB_SUB)
    down = b.copy()
    down.blit(a, (0, 0), special_flags=pygame.BLEND_RGB_SUB)
    up.blit(down, (0, 0), special_flags=pygame.BLEND_RGB_MAX)  # |a - b| per channel
    t = CHANNEL_TOLERANCE + 1
    same = pygame.mask.from_threshold(up, (0, 0, 0), (t, t, t, 255))
    diff = same.copy()
    diff.invert()
    return diff.count(), diff.to_surface(setcolor=(255, 0, 255), unsetcolor=(0, 0, 0))


def render_case(name: str) -> pygame.Surface:
    for case, size, draw in screens():
        if case == name:
            surface = pygame.Surface(size)
            draw(surface)
            return surface
    raise KeyError(name)


@pytest.mark.parametrize("name", [name for name, _ in CASES])
def test_screen_matches_its_golden_image(name, tmp_path):
    actual = render_case(name)
    path = GOLDEN / f"{name}.png"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        pygame.image.save(actual, str(path))
        return
    assert path.exists(), (f"no golden image {path}; create it with "
                           "BATM_UPDATE_GOLDEN=1 pytest tests/test_display_golden.py")
    expected = pygame.image.load(str(path))
    assert expected.get_size() == actual.get_size(), f"{name}: size changed"
    count, mask = differing_pixels(expected, actual)
    allowed = PIXEL_FRACTION * actual.get_width() * actual.get_height()
    if count > allowed:
        pygame.image.save(actual, str(tmp_path / f"{name}.actual.png"))
        pygame.image.save(mask, str(tmp_path / f"{name}.diff.png"))
        pytest.fail(f"{name}: {count} pixels differ (allowed {allowed:.0f}); see "
                    f"{tmp_path / (name + '.actual.png')} and .diff.png; if the change is "
                    "intended: BATM_UPDATE_GOLDEN=1 pytest tests/test_display_golden.py")


def test_every_golden_image_belongs_to_a_screen():
    names = {name for name, _ in CASES}
    stale = sorted(p.stem for p in GOLDEN.glob("*.png") if p.stem not in names)
    assert not stale, f"golden images of no screen (delete them): {stale}"


def test_the_comparison_can_fail():
    a = render_case("admin_pin")
    b = a.copy()
    assert differing_pixels(a, b)[0] == 0
    pygame.draw.rect(b, (255, 0, 0), (60, 250, 30, 30))  # on the plain background
    assert differing_pixels(a, b)[0] == 900
    b.set_at((5, 470), [c + CHANNEL_TOLERANCE for c in a.get_at((5, 470))[:3]])
    assert differing_pixels(a, b)[0] == 900  # within the tolerance


def test_contact_sheet_command(tmp_path):
    from display.contact_sheet import main

    out = tmp_path / "sheet.png"
    assert main([str(out)]) == 0
    sheet = pygame.image.load(str(out))
    assert sheet.get_width() > 1600 and sheet.get_height() > 1000
