"""Every screen the display can show — terminal screens and admin pages — rendered headless,
and a contact sheet of them for review.

    python -m display.contact_sheet OUT.png [--size 800x480] [--columns 4]

all_screens() is also what the golden-screenshot test (tests/test_display_golden.py) and the
render benchmark (bench/display_idle.py) use, so the three always cover the same screens.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

# Extra cases worth their own golden image: a rotated (portrait) panel and text that needs the
# CJK fallback font, on the screens where the layout changes most.
PORTRAIT = ("pairing_code", "admin_server", "admin_pin", "admin_menu")


def screens(size: tuple[int, int] = (800, 480)) -> Iterator[tuple[str, tuple[int, int],
                                                                   Callable]]:
    """(name, canvas size, draw(surface)) for every screen: terminal-<id> (the agent's screens,
    display.preview.SAMPLES), admin_* (the admin pages, display.admin.samples.SAMPLES), and
    portrait-<id> for PORTRAIT on the turned canvas."""
    from display.admin.draw import render_admin
    from display.admin.samples import SAMPLES as ADMIN
    from display.model import parse_screen
    from display.preview import SAMPLES as TERMINAL
    from display.render import render

    portrait = (min(size), max(size))
    for name, raw in TERMINAL.items():
        model = parse_screen(raw)
        yield f"terminal-{name}", size, lambda s, m=model: render(s, m)
    for name, view in ADMIN.items():
        yield name, size, lambda s, vw=view: render_admin(s, vw)
    for name in PORTRAIT:
        if name in ADMIN:
            yield f"portrait-{name}", portrait, lambda s, vw=ADMIN[name]: render_admin(s, vw)
        else:
            model = parse_screen(TERMINAL[name])
            yield f"portrait-{name}", portrait, lambda s, m=model: render(s, m)


def all_screens(size: tuple[int, int] = (800, 480)):
    """{name: Surface} of every screen. pygame.font must be initialised."""
    import pygame

    out = {}
    for name, canvas_size, draw in screens(size):
        surface = pygame.Surface(canvas_size)
        draw(surface)
        out[name] = surface
    return out


def contact_sheet(images: dict, columns: int = 4, thumb_width: int = 400):
    """One image with every screen as a labelled thumbnail."""
    import pygame

    from display import fonts
    from display.theme import BACKGROUND, TEXT

    label_h, pad = 28, 12
    cell_h = min(round(img.get_height() * thumb_width / img.get_width()) for img in images.values())
    rows = (len(images) + columns - 1) // columns
    sheet = pygame.Surface((columns * (thumb_width + pad) + pad,
                            rows * (cell_h + label_h + pad) + pad))
    sheet.fill(BACKGROUND)
    font = fonts.get(16, True)
    for i, (name, image) in enumerate(images.items()):
        r, c = divmod(i, columns)
        x, y = pad + c * (thumb_width + pad), pad + r * (cell_h + label_h + pad)
        sheet.blit(font.render(name, True, TEXT), (x, y + 4))
        height = round(image.get_height() * thumb_width / image.get_width())
        width = thumb_width
        if height > cell_h:  # portrait thumbnails: as tall as the landscape ones
            width, height = round(image.get_width() * cell_h / image.get_height()), cell_h
        thumb = pygame.transform.smoothscale(image, (width, height))
        sheet.blit(thumb, (x, y + label_h))
        pygame.draw.rect(sheet, (90, 100, 115), (x - 1, y + label_h - 1, width + 2, height + 2), 1)
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="render every screen into one review image")
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", default="800x480")
    parser.add_argument("--columns", type=int, default=4)
    args = parser.parse_args(argv)
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    from display.app import parse_size
    from display.screenshots import save_png_atomic

    pygame.font.init()
    images = all_screens(parse_size(args.size))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_png_atomic(contact_sheet(images, max(1, args.columns)), args.out)
    print(f"{args.out}: {len(images)} screens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
