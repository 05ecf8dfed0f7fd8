"""The display's colours meet WCAG AA contrast, checked with the helper in display.theme."""

import pytest

from display.theme import (
    BACKGROUND,
    PALETTES,
    Tone,
    contrast_ratio,
    relative_luminance,
    text_pairs,
)


def test_contrast_helper_known_values():
    assert relative_luminance((0, 0, 0)) == 0
    assert relative_luminance((255, 255, 255)) == pytest.approx(1)
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21)
    assert contrast_ratio((255, 255, 255), (0, 0, 0)) == pytest.approx(21)  # symmetric
    assert contrast_ratio((119, 119, 119), (119, 119, 119)) == pytest.approx(1)
    # #777 on white is the classic "just fails AA" grey: 4.48:1.
    assert contrast_ratio((119, 119, 119), (255, 255, 255)) == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize(("name", "fg", "bg"), text_pairs(), ids=[p[0] for p in text_pairs()])
def test_every_text_colour_pair_meets_wcag_aa(name, fg, bg):
    assert contrast_ratio(fg, bg) >= 4.5, name


def test_tones_are_distinguishable_and_labelled():
    # Red, amber and green must not collapse into one colour, and each carries a word.
    accents = {tone: PALETTES[tone].accent for tone in Tone}
    assert len(set(accents.values())) == len(accents)
    error, wait, ok = accents[Tone.ERROR], accents[Tone.WAIT], accents[Tone.OK]
    assert error[0] > error[1] and error[0] > error[2]  # red-ish
    assert wait[0] > wait[2] and wait[1] > wait[2]  # amber: red+green, little blue
    assert ok[1] > ok[0]  # green-ish
    assert all(PALETTES[t].label for t in Tone)
    assert relative_luminance(BACKGROUND) < 0.05  # dark kiosk background
