"""QR codes (segno) drawn with pygame: the pairing code and serial for the operator's phone.

Dark modules on a white square with the 4-module quiet zone the standard asks for: inverted
(light on dark) codes match the display's theme but many phone scanners do not read them.
"""

from __future__ import annotations

from functools import lru_cache

import pygame

QUIET_ZONE = 4
DARK = (0, 0, 0)
LIGHT = (255, 255, 255)


def pairing_payload(code: str, serial: str | None) -> str:
    """What the pairing QR code holds: a URI-like line the operator's phone shows as text."""
    payload = f"batm:pair?code={code}"
    return f"{payload}&serial={serial}" if serial else payload


@lru_cache(maxsize=8)
def matrix(text: str) -> tuple[tuple[bool, ...], ...]:
    import segno

    qr = segno.make(text, error="m", micro=False)
    return tuple(tuple(bool(cell) for cell in row) for row in qr.matrix)


def draw_qr(surface: pygame.Surface, rect: pygame.Rect, text: str) -> pygame.Rect:
    """Draw text as a QR code as large as fits in rect (whole pixels per module, centred);
    returns the rectangle drawn, quiet zone included."""
    cells = matrix(text)
    n = len(cells) + 2 * QUIET_ZONE
    module = max(1, min(rect.w, rect.h) // n)
    side = module * n
    drawn = pygame.Rect(0, 0, side, side)
    drawn.center = rect.center
    pygame.draw.rect(surface, LIGHT, drawn)
    for y, row in enumerate(cells):
        top = drawn.y + (y + QUIET_ZONE) * module
        for x, dark in enumerate(row):
            if dark:
                surface.fill(DARK, (drawn.x + (x + QUIET_ZONE) * module, top, module, module))
    return drawn
