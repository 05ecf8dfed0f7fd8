"""Text layout: wrapping to a width and shrinking to fit a box.

Wrapping works on measured pixel widths, not character counts, because the bundled font is
proportional and the same message may be Latin, Cyrillic or CJK.  Words break at spaces; a
"word" wider than the line (a long address, or CJK text that has no spaces) breaks between
characters, so nothing is ever cut off at the right edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Three dots, not U+2026: the CJK font draws "…" centred on the line (the CJK convention),
# which looks wrong after Latin text.
ELLIPSIS = "..."


def _break_long_word(font, word: str, width: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for ch in word:
        if current and font.size(current + ch)[0] > width:
            pieces.append(current)
            current = ch
        else:
            current += ch
    if current:
        pieces.append(current)
    return pieces


def wrap(font, text: str, width: int) -> list[str]:
    """Lines of text no wider than width pixels (explicit newlines are kept)."""
    width = max(1, width)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        words = paragraph.split(" ")
        current = ""
        for word in words:
            if not word:
                continue
            candidate = f"{current} {word}" if current else word
            if font.size(candidate)[0] <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
                current = ""
            if font.size(word)[0] <= width:
                current = word
            else:
                *full, current = _break_long_word(font, word, width)
                lines.extend(full)
        lines.append(current)
    # Drop trailing empty lines that a final newline would leave.
    while lines and not lines[-1]:
        lines.pop()
    return lines


def truncate(font, line: str, width: int) -> str:
    """line shortened with an ellipsis so that it fits width pixels."""
    if font.size(line)[0] <= width:
        return line
    while line and font.size(line + ELLIPSIS)[0] > width:
        line = line[:-1]
    return line.rstrip() + ELLIPSIS


@dataclass(frozen=True)
class FittedText:
    font: object
    size: int
    lines: list[str]
    line_height: int

    @property
    def height(self) -> int:
        return self.line_height * len(self.lines)


def line_height_of(size: int, line_spacing: float = 1.3) -> int:
    # Not font.get_linesize(): Noto CJK's line gap (1.45 em) is sized for ideographs and makes
    # Latin paragraphs look double-spaced; 1.3 em suits both.
    return max(1, round(size * line_spacing))


def fit(get_font, sizes: Sequence[int], text: str, width: int, height: int,
        line_spacing: float = 1.3) -> FittedText:
    """Wrap text with the largest of sizes (descending) whose lines fit width × height.

    If even the smallest size does not fit, keep as many lines as fit and end the last one
    with an ellipsis: a truncated message is better than text running over the footer.
    """
    fitted = None
    for size in sizes:
        font = get_font(size)
        lines = wrap(font, text, width)
        fitted = FittedText(font, size, lines, line_height_of(size, line_spacing))
        if fitted.height <= height:
            return fitted
    assert fitted is not None, "fit() needs at least one size"
    keep = max(1, height // fitted.line_height)
    if len(fitted.lines) > keep:
        lines = fitted.lines[:keep]
        lines[-1] = truncate(fitted.font, lines[-1] + " " + ELLIPSIS, width)
        fitted = FittedText(fitted.font, fitted.size, lines, fitted.line_height)
    return fitted
