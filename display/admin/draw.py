"""Paint an AdminView: the same theme, fonts and contrast rules as the terminal screens.

Blue (INFO) status bar with the page title, so the technician always sees where they are; every
touch target is a rounded button from widgets.layout(); feedback (a refused address with the
agent's reason, a wrong PIN) sits right under what it is about, in the error colour and with a
word that says so ("Refused:"), never colour alone.
"""

from __future__ import annotations

import sys

import pygame

from display import fonts
from display.admin import view as v
from display.admin.widgets import Button, Layout, layout
from display.layout import fit, line_height_of, truncate
from display.qr import draw_qr
from display.theme import (
    BACKGROUND,
    PALETTES,
    SURFACE,
    SURFACE_PRESSED,
    TEXT,
    TEXT_MUTED,
    Tone,
)

TONE_COLOURS = {"info": TEXT_MUTED, "error": PALETTES[Tone.ERROR].accent,
                "ok": PALETTES[Tone.OK].accent}
ACCENT = PALETTES[Tone.INFO]


def render_admin(surface: pygame.Surface, view: v.AdminView) -> Layout:
    """Draw view; returns its layout (for hit tests). Never raises, like render.render."""
    lay = layout(view, surface.get_size())
    try:
        _draw(surface, view, lay)
    except Exception as exc:  # a kiosk must keep showing something
        print(f"batm-display: cannot draw {view.screen!r}: {exc!r}", file=sys.stderr)
        surface.fill(BACKGROUND)
    return lay


def _px(lay: Layout, value: float) -> int:
    return max(1, round(value * lay.scale))


def _text(surface, text: str, size: int, colour, pos, bold: bool = False,
          centre_in: pygame.Rect | None = None) -> pygame.Rect:
    font = fonts.get(size, bold)
    if centre_in is not None:
        text = truncate(font, text, centre_in.w - 8)
    image = font.render(text, True, colour)
    rect = image.get_rect(topleft=pos)
    if centre_in is not None:
        # Centre the line box (ascent + descent), not the ink, so labels share a baseline.
        rect.center = centre_in.center
    surface.blit(image, rect)
    return rect


def _draw(surface: pygame.Surface, view: v.AdminView, lay: Layout) -> None:
    surface.fill(BACKGROUND)
    title = f"Administration  ·  {view.title}" if view.screen != v.MENU else view.title
    _bar_title(surface, lay, title)
    kind = v.KIND.get(view.screen, v.INFO)
    if kind == v.PINPAD:
        _pinpad_info(surface, view, lay)
    elif kind == v.KEYBOARD:
        _field(surface, view, lay)
    elif kind == v.MENU_GRID:
        _message(surface, view, lay.areas["message"], lay)
    else:
        _body(surface, view, lay)
    for button in lay.buttons:
        _button(surface, button, lay, pressed=view.pressed == button.key, busy=view.busy)


def _bar_title(surface, lay: Layout, title: str) -> None:
    pygame.draw.rect(surface, ACCENT.accent, lay.bar)
    size = _px(lay, 22)
    font = fonts.get(size, True)
    image = font.render(truncate(font, title, lay.bar.w - _px(lay, 32)), True, ACCENT.on_accent)
    surface.blit(image, (_px(lay, 16), lay.bar.centery - image.get_height() // 2))


def _button(surface, button: Button, lay: Layout, pressed: bool, busy: bool) -> None:
    radius = _px(lay, 10)
    if button.style == "normal":
        fill, ink = (SURFACE_PRESSED if pressed else SURFACE), TEXT
    else:
        palette = PALETTES[Tone.ERROR if button.style == "danger" else Tone.INFO]
        fill, ink = palette.accent, palette.on_accent
    pygame.draw.rect(surface, fill, button.rect, border_radius=radius)
    if pressed:  # shape as well as colour: an outline around the touched button
        pygame.draw.rect(surface, TEXT, button.rect, width=max(2, _px(lay, 3)),
                         border_radius=radius)
    if button.detail:
        top = button.rect.inflate(0, -button.rect.h // 2).move(0, -button.rect.h // 8)
        _text(surface, button.label, _px(lay, 28), ink, (0, 0), bold=True, centre_in=top)
        low = top.move(0, _px(lay, 40))
        _text(surface, button.detail, _px(lay, 16), TEXT_MUTED if button.style == "normal"
              else ink, (0, 0), centre_in=low)
    else:
        size = _px(lay, 28 if len(button.label) <= 2 else 22)
        _text(surface, button.label, size, ink, (0, 0), bold=True, centre_in=button.rect)


def _message(surface, view: v.AdminView, rect: pygame.Rect, lay: Layout) -> int:
    """The feedback line(s) in rect; returns the y below them."""
    if not view.message:
        return rect.y
    colour = TONE_COLOURS.get(view.tone, TEXT_MUTED)
    sizes = [_px(lay, s) for s in (20, 18, 16)]
    fitted = fit(lambda s: fonts.get(s, view.tone == "error"), sizes, view.message, rect.w,
                 max(rect.h, line_height_of(sizes[-1])))
    y = rect.y
    for line in fitted.lines:
        _text(surface, line, fitted.size, colour, (rect.x, y), bold=view.tone == "error")
        y += fitted.line_height
    return y


def _pinpad_info(surface, view: v.AdminView, lay: Layout) -> None:
    area = lay.areas["info"]
    y = area.y
    if view.prompt:
        sizes = [_px(lay, s) for s in (26, 22, 20)]
        fitted = fit(lambda s: fonts.get(s, True), sizes, view.prompt, area.w, area.h // 3)
        for line in fitted.lines:
            _text(surface, line, fitted.size, TEXT, (area.x, y), bold=True)
            y += fitted.line_height
    y += _px(lay, 16)
    # The digits entered, as dots in boxes: someone looking over a shoulder learns the length,
    # nothing else (and the length is bounded 6-12 anyway).
    box = _px(lay, 34)
    gap = _px(lay, 8)
    slots = max(6, view.pin_length)
    per_row = max(1, (area.w + gap) // (box + gap))
    for i in range(slots):
        r, c = divmod(i, per_row)
        rect = pygame.Rect(area.x + c * (box + gap), y + r * (box + gap), box, box)
        pygame.draw.rect(surface, SURFACE, rect, border_radius=_px(lay, 6))
        if i < view.pin_length:
            pygame.draw.circle(surface, TEXT, rect.center, box // 4)
    lay.areas["dots"] = pygame.Rect(area.x, y, area.w, box)
    y += ((slots - 1) // per_row + 1) * (box + gap) + _px(lay, 8)
    message_rect = pygame.Rect(area.x, y, area.w, max(0, area.bottom - y))
    lay.areas["message"] = message_rect
    _message(surface, view, message_rect, lay)


def _field(surface, view: v.AdminView, lay: Layout) -> None:
    rect = lay.areas["field"]
    pygame.draw.rect(surface, SURFACE, rect, border_radius=_px(lay, 10))
    pygame.draw.rect(surface, ACCENT.accent, rect, width=max(2, _px(lay, 2)),
                     border_radius=_px(lay, 10))
    size = _px(lay, 28)
    font = fonts.get(size)
    pad = _px(lay, 14)
    room = rect.w - 2 * pad - _px(lay, 6)
    text = view.field or ""
    while text and font.size(text)[0] > room:  # show the end: that is where one types
        text = text[1:]
    if view.field:
        image = font.render(text, True, TEXT)
        surface.blit(image, (rect.x + pad, rect.centery - image.get_height() // 2))
        caret_x = rect.x + pad + image.get_width() + _px(lay, 2)
    else:
        hint = truncate(fonts.get(_px(lay, 20)), "host or IP[:port], e.g. 192.0.2.1:8443", room)
        image = fonts.get(_px(lay, 20)).render(hint, True, TEXT_MUTED)
        surface.blit(image, (rect.x + pad, rect.centery - image.get_height() // 2))
        caret_x = rect.x + pad - _px(lay, 4)
    caret_h = round(size * 1.1)
    pygame.draw.rect(surface, ACCENT.accent, (caret_x, rect.centery - caret_h // 2,
                                              max(2, _px(lay, 3)), caret_h))
    _message(surface, view, lay.areas["message"], lay)


def _body(surface, view: v.AdminView, lay: Layout) -> None:
    area = lay.areas["body"]
    y = area.y
    if view.prompt:
        sizes = [_px(lay, s) for s in (26, 24, 22, 20)]
        fitted = fit(lambda s: fonts.get(s, True), sizes, view.prompt, area.w, area.h // 2)
        for line in fitted.lines:
            _text(surface, line, fitted.size, TEXT, (area.x, y), bold=True)
            y += fitted.line_height
        y += _px(lay, 12)
    if view.rows:
        y = _rows(surface, view.rows, pygame.Rect(area.x, y, area.w, area.bottom - y), lay)
    _message(surface, view, pygame.Rect(area.x, y + _px(lay, 8), area.w,
                                        max(0, area.bottom - y - _px(lay, 8))), lay)
    if view.qr and "qr" in lay.areas:
        lay.areas["qr"] = draw_qr(surface, lay.areas["qr"], view.qr)


def _rows(surface, rows, area: pygame.Rect, lay: Layout) -> int:
    """Label/value pairs in two columns, shrinking to fit; returns the y below them."""
    for size_design in (22, 20, 18, 16):
        size = _px(lay, size_design)
        line_h = line_height_of(size)
        if line_h * len(rows) <= area.h or size_design == 16:
            break
    label_font, value_font = fonts.get(size), fonts.get(size, True)
    label_w = min(area.w // 2, max(label_font.size(label)[0] for label, _ in rows) + _px(lay, 16))
    y = area.y
    for label, value in rows:
        if y + line_h > area.bottom:
            break
        _text(surface, label, size, TEXT_MUTED, (area.x, y))
        shown = truncate(value_font, value or "—", area.w - label_w)
        _text(surface, shown, size, TEXT, (area.x + label_w, y), bold=True)
        y += line_h
    return y
