"""The display's bundled fonts: Noto Sans with Noto Sans CJK as fallback (SIL OFL 1.1, OFL.txt).

Fonts are loaded from this package directory only, never from system font paths: a kiosk must
look the same on every terminal whatever its OS image has installed, and must show a Czech,
Ukrainian or Chinese message even on a minimal image that has no fonts at all.

Neither font alone is enough (see make_subset.py): Noto Sans has full Latin, Greek and Cyrillic
but no CJK; Noto Sans CJK has CJK but lacks e.g. č ř ő ł є.  SDL_ttf has no fallback chain, so
ChainFont splits text into runs by which font has the characters (coverage.json) and draws
each run with its font on a common baseline.  It offers the subset of pygame.font.Font's API
the renderer uses: size, render, metrics, get_ascent/get_descent/get_height/get_linesize.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

FONT_DIR = Path(__file__).resolve().parent
REGULAR = FONT_DIR / "NotoSans-Regular.subset.ttf"
BOLD = FONT_DIR / "NotoSans-Bold.subset.ttf"
CJK_REGULAR = FONT_DIR / "NotoSansCJK-Regular.subset.otf"
CJK_BOLD = FONT_DIR / "NotoSansCJK-Bold.subset.otf"
COVERAGE = FONT_DIR / "coverage.json"
FONT_FILES = (REGULAR, BOLD, CJK_REGULAR, CJK_BOLD)


def font_path(bold: bool = False) -> Path:
    """The primary (Noto Sans) font file of a weight."""
    return BOLD if bold else REGULAR


def cjk_font_path(bold: bool = False) -> Path:
    return CJK_BOLD if bold else CJK_REGULAR


@lru_cache(maxsize=2)
def primary_coverage(bold: bool = False) -> frozenset[int]:
    """Code points the primary font of a weight has (from coverage.json)."""
    ranges = json.loads(COVERAGE.read_text())["fonts"][font_path(bold).name]
    return frozenset(cp for first, last in ranges for cp in range(first, last + 1))


class ChainFont:
    """A primary pygame Font with a fallback Font for the characters the primary lacks."""

    def __init__(self, primary, fallback, covered: frozenset[int]):
        self.primary = primary
        self.fallback = fallback
        self.covered = covered
        self._ascent = max(primary.get_ascent(), fallback.get_ascent())
        self._descent = min(primary.get_descent(), fallback.get_descent())  # negative

    def font_for(self, ch: str):
        return self.primary if ord(ch) in self.covered else self.fallback

    def runs(self, text: str) -> list[tuple[object, str]]:
        """text cut into (font, run) pieces; whitespace stays with the run before it, so a
        space between two ideographs does not switch fonts twice."""
        runs: list[tuple[object, str]] = []
        for ch in text:
            font = runs[-1][0] if (ch.isspace() and runs) else self.font_for(ch)
            if runs and runs[-1][0] is font:
                runs[-1] = (font, runs[-1][1] + ch)
            else:
                runs.append((font, ch))
        return runs

    def get_ascent(self) -> int:
        return self._ascent

    def get_descent(self) -> int:
        return self._descent

    def get_height(self) -> int:
        return self._ascent - self._descent

    def get_linesize(self) -> int:
        return max(self.primary.get_linesize(), self.fallback.get_linesize())

    def size(self, text: str) -> tuple[int, int]:
        return sum(font.size(run)[0] for font, run in self.runs(text)), self.get_height()

    def metrics(self, text: str) -> list:
        return [self.font_for(ch).metrics(ch)[0] for ch in text]

    def render(self, text: str, antialias: bool, colour, background=None):
        import pygame

        width, height = self.size(text)
        surface = pygame.Surface((max(1, width), height), pygame.SRCALPHA)
        if background is not None:
            surface.fill(background)
        x = 0
        for font, run in self.runs(text):
            image = font.render(run, antialias, colour)
            # Align every run on the shared baseline.
            surface.blit(image, (x, self._ascent - font.get_ascent()))
            x += font.size(run)[0]
        return surface


@lru_cache(maxsize=64)
def get(size: int, bold: bool = False) -> ChainFont:
    """The bundled family at a pixel size, cached (opening a 3 MB CFF font is the expensive
    part of drawing a screen).  pygame.font must be initialised."""
    import pygame

    size = max(6, int(size))
    return ChainFont(pygame.font.Font(str(font_path(bold)), size),
                     pygame.font.Font(str(cjk_font_path(bold)), size),
                     primary_coverage(bold))


def clear_cache() -> None:
    """Forget loaded fonts: needed after pygame.font.quit(), which invalidates them."""
    get.cache_clear()
