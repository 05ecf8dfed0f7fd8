"""Where every button and area of an admin page goes, for a canvas size.

A pure function of (view, size), used both to draw and to hit-test a touch, so the two can never
disagree. Sizes are design pixels of the 800x480 7-inch panel scaled like the terminal screens
(render.Canvas). Every touch target is at least MIN_TARGET design pixels in both directions:
64 px on that panel is 9.7 mm (800 px over 154 mm), above the ~9 mm a fingertip needs; the
tests check it for landscape and portrait.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pygame

from display.admin import view as v

MIN_TARGET = 64
BAR = 52  # status bar height
MARGIN = 16
GAP = 8
BUTTON_H = 72


@dataclass(frozen=True)
class Button:
    key: str
    label: str
    rect: pygame.Rect
    style: str = "normal"  # "normal", "primary", "danger"
    detail: str = ""  # a second, smaller line (menu tiles)


@dataclass
class Layout:
    scale: float
    bar: pygame.Rect
    buttons: list[Button] = field(default_factory=list)
    areas: dict[str, pygame.Rect] = field(default_factory=dict)

    def hit(self, pos: tuple[int, int]) -> Button | None:
        for button in self.buttons:
            if button.rect.collidepoint(pos):
                return button
        return None

    def button(self, key: str) -> Button | None:
        return next((b for b in self.buttons if b.key == key), None)


def scale_of(size: tuple[int, int]) -> float:
    long_side, short_side = max(size), min(size)
    return min(long_side / 800, short_side / 480)


BUTTON_LABELS = {"back": "Back", "refresh": "Refresh", "cancel": "Cancel", "exit": "Exit",
                 "confirm": "Reboot now", "ok": "OK", "del": "Del", "clear": "Clear",
                 "save": "Save"}
BUTTON_STYLES = {"confirm": "danger", "ok": "primary", "save": "primary"}


def _button(key: str, rect: pygame.Rect) -> Button:
    label = BUTTON_LABELS.get(key, key)
    if key.startswith(("digit:", "char:")):
        label = key.split(":", 1)[1]
    return Button(key, label, rect, BUTTON_STYLES.get(key, "normal"))


def layout(view: v.AdminView, size: tuple[int, int]) -> Layout:
    w, h = size
    s = scale_of(size)

    def px(value: float) -> int:
        return max(1, round(value * s))

    out = Layout(s, pygame.Rect(0, 0, w, px(BAR)))
    content = pygame.Rect(px(MARGIN), px(BAR) + px(MARGIN), w - 2 * px(MARGIN),
                          h - px(BAR) - 2 * px(MARGIN))
    kind = v.KIND.get(view.screen, v.INFO)
    if kind == v.PINPAD:
        _pinpad(out, view, content, px, landscape=w >= h)
    elif kind == v.MENU_GRID:
        _menu(out, content, px, landscape=w >= h)
    elif kind == v.KEYBOARD:
        _keyboard(out, content, px, landscape=w >= h)
    else:
        _bottom_bar(out, view, content, px, landscape=w >= h)
    return out


def _grid(area: pygame.Rect, cols: int, rows: int, gap: int,
          max_h: int | None = None) -> list[pygame.Rect]:
    cell_w = (area.w - (cols - 1) * gap) // cols
    cell_h = (area.h - (rows - 1) * gap) // rows
    if max_h:
        cell_h = min(cell_h, max_h)
    return [pygame.Rect(area.x + c * (cell_w + gap), area.y + r * (cell_h + gap), cell_w, cell_h)
            for r in range(rows) for c in range(cols)]


def _pinpad(out: Layout, view: v.AdminView, content: pygame.Rect, px, landscape: bool) -> None:
    keys = [f"digit:{d}" for d in "123456789"] + ["del", "digit:0", "ok"]
    if landscape:
        pad = pygame.Rect(0, content.y, px(3 * 112 + 2 * GAP), content.h)
        pad.right = content.right
        info = pygame.Rect(content.x, content.y, pad.x - content.x - px(24), content.h)
        cancel = pygame.Rect(info.x, info.bottom - px(BUTTON_H), px(200), px(BUTTON_H))
    else:
        pad_h = 4 * px(84) + 3 * px(GAP)
        cancel = pygame.Rect(content.x, content.bottom - px(BUTTON_H), content.w, px(BUTTON_H))
        pad = pygame.Rect(content.x, cancel.y - px(24) - pad_h, content.w, pad_h)
        info = pygame.Rect(content.x, content.y, content.w, pad.y - content.y - px(GAP))
    for key, rect in zip(keys, _grid(pad, 3, 4, px(GAP), max_h=px(92)), strict=True):
        out.buttons.append(_button(key, rect))
    out.buttons.append(_button("cancel", cancel))
    info.h = cancel.y - info.y - px(GAP) if landscape else info.h
    out.areas["info"] = info


def _menu(out: Layout, content: pygame.Rect, px, landscape: bool) -> None:
    message = pygame.Rect(content.x, content.y, content.w, px(34))
    grid = pygame.Rect(content.x, message.bottom + px(GAP), content.w,
                       content.bottom - message.bottom - px(GAP))
    cols, rows = (4, 2) if landscape else (2, 4)
    for (key, label, detail), rect in zip(v.MENU_ITEMS, _grid(grid, cols, rows, px(12)),
                                          strict=True):
        style = "danger" if key == "reboot" else "normal"
        out.buttons.append(Button(key, label, rect, style, detail))
    out.areas["message"] = message


def _keyboard(out: Layout, content: pygame.Rect, px, landscape: bool) -> None:
    row_h = px(BUTTON_H)
    if landscape:
        field_rect = pygame.Rect(content.x, content.y, content.w - 2 * (px(120) + px(GAP)), row_h)
        back = pygame.Rect(field_rect.right + px(GAP), content.y, px(120), row_h)
        save = pygame.Rect(back.right + px(GAP), content.y, px(120), row_h)
        message = pygame.Rect(content.x, field_rect.bottom + px(4), content.w, px(30))
        keys_area = pygame.Rect(content.x, message.bottom + px(4), content.w,
                                content.bottom - message.bottom - px(4))
    else:
        # Portrait: 7 columns of 64 px only fit with narrower margins and gaps.
        content = content.inflate(2 * px(MARGIN // 2), 0)
        field_rect = pygame.Rect(content.x, content.y, content.w, row_h)
        message = pygame.Rect(content.x, field_rect.bottom + px(4), content.w, px(56))
        back = pygame.Rect(content.x, content.bottom - row_h, (content.w - px(GAP)) // 2, row_h)
        save = pygame.Rect(back.right + px(GAP), back.y, back.w, row_h)
        keys_area = pygame.Rect(content.x, message.bottom + px(4), content.w,
                                back.y - message.bottom - px(4) - px(GAP))
    out.areas.update(field=field_rect, message=message)
    gap = px(2) if not landscape else px(6)
    wide = len(v.KEYBOARD_WIDE[0])
    rows = v.KEYBOARD_WIDE if keys_area.w >= wide * px(MIN_TARGET) + (wide - 1) * gap \
        else v.KEYBOARD_NARROW
    cols = max(len(row) for row in rows)
    cell_w = (keys_area.w - (cols - 1) * gap) // cols
    cell_h = min(px(80), (keys_area.h - (len(rows) - 1) * gap) // len(rows))
    for r, row in enumerate(rows):
        y = keys_area.y + r * (cell_h + gap)
        for c, token in enumerate(row):
            span = cols - c if c == len(row) - 1 else 1  # the last key fills its row
            rect = pygame.Rect(keys_area.x + c * (cell_w + gap), y,
                               span * cell_w + (span - 1) * gap, cell_h)
            out.buttons.append(_button(token if len(token) > 1 else f"char:{token}", rect))
    out.buttons += [_button("back", back), _button("save", save)]


def _bottom_bar(out: Layout, view: v.AdminView, content: pygame.Rect, px,
                landscape: bool) -> None:
    """Info and confirmation pages: text above, a row of big buttons at the bottom."""
    bar = pygame.Rect(content.x, content.bottom - px(BUTTON_H), content.w, px(BUTTON_H))
    keys = view.buttons or ("back",)
    width = min(px(240), (bar.w - (len(keys) - 1) * px(12)) // len(keys))
    for i, key in enumerate(keys):
        rect = pygame.Rect(0, bar.y, width, bar.h)
        if i == 0:
            rect.x = bar.x  # back/cancel at the left, the action at the right
        else:
            rect.right = bar.right - (len(keys) - 1 - i) * (width + px(12))
        out.buttons.append(_button(key, rect))
    body = pygame.Rect(content.x, content.y, content.w, bar.y - content.y - px(GAP))
    if view.qr:
        side = min(body.h, px(260)) if landscape else min(body.w, px(300), body.h // 2)
        qr = pygame.Rect(0, body.y, side, side)
        if landscape:
            qr.right = body.right
            body.w = qr.x - body.x - px(24)
        else:
            qr.centerx, qr.bottom = body.centerx, body.bottom
            body.h = qr.y - body.y - px(GAP)
        out.areas["qr"] = qr
    out.areas["body"] = body
