"""Colours of the kiosk display, and the WCAG contrast check they are held to.

A terminal stands in shops, stations and sunlit windows, and the person reading it may be a
technician squinting at a pairing code.  So every text colour is checked against the background
it is drawn on with the WCAG 2.x contrast ratio (tests/test_display_theme.py asks for at least
4.5:1, the AA level for normal text), and colour is never the only signal: each tone also has a
status word and an icon.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

RGB = tuple[int, int, int]

# A dark background: it glares less on a backlit panel at night and makes the coloured
# accents readable as text (light-on-dark), so a title can carry the tone's colour itself.
BACKGROUND: RGB = (16, 22, 30)
# Panels drawn on the background (footer strip, pairing-code tiles, progress-bar track).
SURFACE: RGB = (34, 44, 57)
# A button under the finger: the feedback that the touch was seen.
SURFACE_PRESSED: RGB = (52, 66, 86)
TEXT: RGB = (241, 245, 249)
TEXT_MUTED: RGB = (168, 180, 194)


class Tone(Enum):
    """What a screen means to the person in front of the terminal."""

    ERROR = "error"  # something is wrong and needs someone (red)
    WAIT = "wait"  # the terminal is working on it or waiting for the operator (amber)
    OK = "ok"  # in service (green)
    INFO = "info"  # setup / administration, nothing is wrong (blue)
    NEUTRAL = "neutral"  # a screen this display does not know (grey)


@dataclass(frozen=True)
class Palette:
    accent: RGB  # status bar fill, icon, title text on BACKGROUND
    on_accent: RGB  # text drawn on the accent (the status word)
    label: str  # the status word: colour is never the only signal


PALETTES: dict[Tone, Palette] = {
    Tone.ERROR: Palette(accent=(248, 113, 113), on_accent=BACKGROUND, label="ERROR"),
    Tone.WAIT: Palette(accent=(251, 191, 36), on_accent=BACKGROUND, label="PLEASE WAIT"),
    Tone.OK: Palette(accent=(52, 211, 153), on_accent=BACKGROUND, label="IN SERVICE"),
    Tone.INFO: Palette(accent=(96, 165, 250), on_accent=BACKGROUND, label="SETUP"),
    Tone.NEUTRAL: Palette(accent=(168, 180, 194), on_accent=BACKGROUND, label="NOTICE"),
}


def relative_luminance(rgb: RGB) -> float:
    """WCAG 2.x relative luminance of an sRGB colour (0 = black, 1 = white)."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: RGB, b: RGB) -> float:
    """WCAG contrast ratio between two colours, from 1.0 (same) to 21.0 (black on white)."""
    la, lb = relative_luminance(a), relative_luminance(b)
    lighter, darker = max(la, lb), min(la, lb)
    return (lighter + 0.05) / (darker + 0.05)


def text_pairs() -> list[tuple[str, RGB, RGB]]:
    """Every (name, text colour, background colour) combination the renderer draws.

    Kept next to the colours so a new combination is added here and checked by the test.
    """
    pairs = [
        ("text on background", TEXT, BACKGROUND),
        ("text on surface", TEXT, SURFACE),
        ("muted on background", TEXT_MUTED, BACKGROUND),
        ("muted on surface", TEXT_MUTED, SURFACE),
        ("text on pressed button", TEXT, SURFACE_PRESSED),
        ("muted on pressed button", TEXT_MUTED, SURFACE_PRESSED),
    ]
    for tone, palette in PALETTES.items():
        pairs.append((f"{tone.value} accent on background", palette.accent, BACKGROUND))
        pairs.append((f"{tone.value} accent on surface", palette.accent, SURFACE))
        pairs.append((f"{tone.value} status word on accent", palette.on_accent, palette.accent))
    return pairs
