"""Every screen id renders, with the parts that matter actually on the pixels."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import pygame
import pytest

from display import fonts
from display.model import parse_screen
from display.preview import SAMPLES
from display.render import render
from display.screens import SPECS
from display.theme import BACKGROUND, PALETTES, SURFACE, TEXT, Tone

CONTRACT_IDS = ["set_server", "connecting", "server_unreachable", "terminal_unpaired",
                "upgrading", "unknown_terminal", "pairing_code", "vpn_error",
                "certificate_mismatch", "in_service"]


@pytest.fixture(scope="module", autouse=True)
def pygame_font():
    pygame.font.init()
    yield
    fonts.clear_cache()


@pytest.fixture
def surface():
    return pygame.Surface((800, 480))


def _pixels(surface, rect, colour, tolerance=40):
    """How many pixels inside rect are within tolerance of colour."""
    count = 0
    for x in range(rect.left, rect.right):
        for y in range(rect.top, rect.bottom):
            px = surface.get_at((x, y))
            if all(abs(px[i] - colour[i]) <= tolerance for i in range(3)):
                count += 1
    return count


def _render_checked(surface, raw, capsys):
    regions = render(surface, parse_screen(raw))
    assert "cannot draw" not in capsys.readouterr().err  # the safety net did not fire
    return regions


def test_every_contract_screen_has_a_spec_and_a_sample():
    for screen_id in [*CONTRACT_IDS, "agent_unreachable"]:
        assert screen_id in SPECS and screen_id in SAMPLES


@pytest.mark.parametrize("screen_id", list(SAMPLES))
def test_every_screen_renders_title_text_and_footer(surface, screen_id, capsys):
    regions = _render_checked(surface, SAMPLES[screen_id], capsys)
    for name in ("status_bar", "icon", "title", "text", "footer"):
        assert name in regions, f"{screen_id}: no {name}"
        rect = regions[name].clip(surface.get_rect())
        assert rect.width > 0 and rect.height > 0
    assert regions["footer"].bottom == 480
    # Nothing written over the footer.
    for name, rect in regions.items():
        if name not in ("footer",):
            assert rect.bottom <= regions["footer"].top, f"{screen_id}: {name} overlaps footer"
    # The title is really drawn: it has accent-coloured ink.
    assert _pixels(surface, regions["title"], surface.get_at(regions["status_bar"].center)) > 50


@pytest.mark.parametrize(("screen_id", "tone"), [
    ("vpn_error", Tone.ERROR), ("terminal_unpaired", Tone.ERROR),
    ("certificate_mismatch", Tone.ERROR), ("server_unreachable", Tone.ERROR),
    ("unknown_terminal", Tone.ERROR), ("agent_unreachable", Tone.ERROR),
    ("upgrading", Tone.WAIT), ("pairing_code", Tone.WAIT), ("connecting", Tone.WAIT),
    ("in_service", Tone.OK), ("set_server", Tone.INFO), ("future_screen", Tone.NEUTRAL),
])
def test_status_bar_colour_means_something(surface, screen_id, tone, capsys):
    regions = _render_checked(surface, SAMPLES[screen_id], capsys)
    # Sample the bar's right end, away from the status word.
    x = regions["status_bar"].right - 5
    assert tuple(surface.get_at((x, 5)))[:3] == PALETTES[tone].accent


def test_pairing_code_is_big_and_every_character_is_drawn(surface, capsys):
    regions = _render_checked(surface, {**SAMPLES["pairing_code"], "pairing_code": "7KQ3-M9XP"},
                              capsys)
    tiles = [regions[f"code_tile_{i}"] for i in range(8)]
    assert "code_tile_8" not in regions
    code = regions["code"]
    assert surface.get_rect().contains(code)
    assert code.width >= 0.8 * 800
    for i, tile in enumerate(tiles):
        ink = _pixels(surface, tile, TEXT)
        assert ink > 0.08 * tile.width * tile.height, f"tile {i} has no glyph"
        # Capital letters at least 10 % of the panel height: ~9 mm on a 7-inch 800x480 panel,
        # readable from arm's length.
        ink_mask = pygame.mask.from_threshold(surface.subsurface(tile), TEXT, (40, 40, 40, 255))
        ink_box = ink_mask.get_bounding_rects()[0].unionall(ink_mask.get_bounding_rects())
        assert ink_box.height >= 0.10 * 480, f"tile {i}: glyph {ink_box.height} px high"
        assert tuple(surface.get_at((tile.left + 3, tile.centery)))[:3] == SURFACE
    # The two groups are visibly separated: a wider gap between tile 3 and tile 4.
    assert tiles[4].left - tiles[3].right > 2 * (tiles[1].left - tiles[0].right)
    # Serial and server are shown with the code.
    assert "code_info" in regions


def test_pairing_code_differs_per_code(surface):
    render(surface, parse_screen({**SAMPLES["pairing_code"], "pairing_code": "AAAA-AAAA"}))
    first = pygame.image.tobytes(surface, "RGB")
    render(surface, parse_screen({**SAMPLES["pairing_code"], "pairing_code": "AAAA-AAAB"}))
    assert pygame.image.tobytes(surface, "RGB") != first


def test_pairing_screen_without_code_says_it_is_waiting(surface, capsys):
    regions = _render_checked(surface, {**SAMPLES["pairing_code"], "pairing_code": None},
                              capsys)
    assert "code_placeholder" in regions and "code" not in regions


@pytest.mark.parametrize("progress", [0, 25, 62, 100])
def test_upgrade_progress_bar_is_proportional(surface, progress, capsys):
    regions = _render_checked(surface, {**SAMPLES["upgrading"], "progress": progress}, capsys)
    bar = regions["progress_bar"]
    assert "warning" in regions  # "do not power off"
    if progress == 0:
        assert "progress_fill" not in regions
        return
    fill = regions["progress_fill"]
    assert abs(fill.width - bar.width * progress / 100) <= bar.height
    inside = (fill.right - bar.height // 2 - 2, fill.centery)
    assert tuple(surface.get_at(inside))[:3] == PALETTES[Tone.WAIT].accent


def test_upgrading_without_numbers_still_renders(surface, capsys):
    regions = _render_checked(surface, {"screen": "upgrading"}, capsys)
    assert "progress_bar" in regions and "progress_fill" not in regions


MALFORMED = [
    None, [], "upgrading", 7, {}, {"screen": None}, {"screen": 12, "title": 5},
    {"screen": "pairing_code", "pairing_code": {"x": 1}},
    {"screen": "pairing_code", "pairing_code": "X" * 120},
    {"screen": "pairing_code", "pairing_code": "----"},
    {"screen": "pairing_code", "pairing_code": "7KQ3M9XP"},
    {"screen": "upgrading", "progress": "half", "step": "one", "steps": None},
    {"screen": "upgrading", "progress": float("inf"), "step": 5, "steps": 2},
    {"screen": "in_service", "title": "\x00\x01\x02", "text": "\ud800\udfff", "serial": []},
    {"screen": "vpn_error", "text": "word " * 2000, "detail": "d" * 5000},
    {"screen": "admin_pin", "title": "Enter PIN"},
    {"screen": "../../etc/passwd", "title": "Путь 路径", "text": "한국어 テキスト"},
    {"screen": "in_service", "serial": "S" * 500, "server": "h" * 500, "version": 10**40},
]


@pytest.mark.parametrize("size", [(800, 480), (320, 240), (1920, 1080), (480, 800)])
@pytest.mark.parametrize("raw", MALFORMED, ids=[f"m{i}" for i in range(len(MALFORMED))])
def test_malformed_models_render_without_error(raw, size, capsys):
    surface = pygame.Surface(size)
    regions = _render_checked(surface, raw, capsys)
    assert "title" in regions and "footer" in regions
    assert tuple(surface.get_at((size[0] - 1, size[1] // 2)))[:3] == BACKGROUND
