"""The bundled fonts really contain the scripts the display promises (not tofu boxes)."""

import json
import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import pygame
import pytest

from display import fonts
from display.fonts import make_subset

# A character no font has (an unassigned code point): its rendering is the .notdef box that
# every missing glyph gets.
MISSING = "\u0378"
SAMPLES = {
    "Basic Latin": "AZaz09",
    "Latin-1": "éüßñ",
    "Czech": "čřšžůěČŘŠŽ",
    "Polish": "łąęśźżŁ",
    "Hungarian": "őűŐŰ",
    "Romanian": "șțȘȚ",
    "Vietnamese": "ệơư",
    "Greek": "ΩΣλάώ",
    "Russian": "ЖжЯяЁ",
    "Ukrainian": "єіїґЄІЇҐ",
    "Simplified Chinese": "中国汉字终端",
    "Japanese kanji": "日本漢字働",
    "Hiragana": "あいう",
    "Katakana": "アイウ",
    "Hangul": "한국어",
    "CJK punctuation": "。「」",
    "symbols": "€₿⚠→…",
}


@pytest.fixture(scope="module", autouse=True)
def font_module():
    pygame.font.init()
    yield
    fonts.clear_cache()


def _bitmap(font, ch):
    surface = font.render(ch, True, (255, 255, 255), (0, 0, 0))
    return surface.get_size(), pygame.image.tobytes(surface, "RGB")


@pytest.mark.parametrize("bold", [False, True], ids=["regular", "bold"])
@pytest.mark.parametrize("script", list(SAMPLES))
def test_script_glyphs_are_in_the_bundled_fonts(script, bold):
    chain = fonts.get(40, bold)
    for ch in SAMPLES[script]:
        font = chain.font_for(ch)
        # Width alone cannot tell: a CJK glyph and the .notdef box are both one em wide.
        # The rendered pixels of the font chosen for the character must differ from the box.
        assert _bitmap(font, ch) != _bitmap(font, MISSING), (
            f"{ch!r} (U+{ord(ch):04X}) is drawn as the missing-glyph box ({script})"
        )


def test_latin_uses_noto_sans_and_cjk_falls_back():
    chain = fonts.get(30)
    assert chain.font_for("č") is chain.primary
    assert chain.font_for("中") is chain.fallback
    assert [run for _, run in chain.runs("Kód 中文 OK")] == ["Kód ", "中文 ", "OK"]


def test_mixed_script_line_renders_on_one_baseline():
    chain = fonts.get(30)
    surface = chain.render("Ab中", True, (255, 255, 255))
    assert surface.get_size() == chain.size("Ab中")
    assert surface.get_height() == chain.get_height()
    # Glyph bottoms (baseline) line up: "A" (Noto Sans) and "中" (CJK) end close together.
    a = chain.render("A", True, (255, 255, 255)).get_bounding_rect()
    han = chain.render("中", True, (255, 255, 255)).get_bounding_rect()
    assert abs(a.bottom - han.bottom) <= 4


def test_fonts_are_loaded_from_the_package_not_the_system():
    package_dir = os.path.dirname(fonts.__file__)
    for path in fonts.FONT_FILES:
        assert str(path).startswith(package_dir)
        assert path.is_file()


def test_font_files_are_small_and_licensed():
    for path in fonts.FONT_FILES:
        assert path.stat().st_size <= 5_000_000, f"{path.name} is over 5 MB"
    licence = (fonts.FONT_DIR / "OFL.txt").read_text()
    assert "SIL OPEN FONT LICENSE Version 1.1" in licence
    assert "Noto Sans CJK" in licence and "Noto Sans:" in licence
    coverage = json.loads(fonts.COVERAGE.read_text())["fonts"]
    assert set(coverage) == {fonts.REGULAR.name, fonts.BOLD.name}


def test_subset_script_enumerates_the_promised_character_sets():
    # These use only Python's codecs, not fontTools, so they run everywhere.
    assert len(make_subset.gb2312_hanzi()) == 6763
    assert len(make_subset.ks_x_1001_hangul()) == 2350
    kanji = make_subset.jis_x_0208_kanji()
    assert len(kanji) >= 6300 and ord("漢") in kanji and ord("働") in kanji
    wanted = make_subset.wanted_code_points()
    for ch in "AéőΩЖ中あア한。":
        assert ord(ch) in wanted
    assert make_subset.code_point_ranges({1, 2, 3, 7, 9, 10}) == [[1, 3], [7, 7], [9, 10]]
