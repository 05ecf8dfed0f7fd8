"""Draw one screen model onto a pygame Surface.

Layout, top to bottom: a status bar in the screen's tone colour with a status word, an icon and
the title, the explanatory text, a screen-specific body (the pairing code, or upgrade progress),
an optional detail line, and a footer with serial, version and server for the technician.
Everything is sized relative to the 800x480 7-inch panel the terminal ships with, so other
--size values scale rather than reflow into something untested.

render() is a pure function of (surface size, model): the app calls it only when the model
changes, and tests call it on an off-screen Surface.  It returns the rectangles of what it drew
(status bar, title, code tiles, progress bar, footer …) so tests can check the pixels in them.
"""

from __future__ import annotations

import sys

import pygame

from display import fonts
from display.layout import FittedText, fit, line_height_of, truncate
from display.model import ScreenModel
from display.qr import draw_qr, pairing_payload
from display.screens import Body, spec_for, text_of, title_of
from display.theme import BACKGROUND, PALETTES, SURFACE, TEXT, TEXT_MUTED, Palette, Tone

BASE_SIZE = (800, 480)
# The characters a pairing code can contain (Crockford base32, docs/protocol.md §1): tiles are
# as wide as the widest of them so the code looks monospaced and groups line up.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Canvas:
    """A surface plus the scale factor that maps the 800x480 design onto it."""

    def __init__(self, surface: pygame.Surface):
        self.surface = surface
        self.width, self.height = surface.get_size()
        # Measured against the panel in either orientation: kiosks often mount the 7-inch
        # panel portrait (480x800), which should get the same type sizes, not 60 % of them.
        long_side, short_side = max(self.width, self.height), min(self.width, self.height)
        self.scale = min(long_side / BASE_SIZE[0], short_side / BASE_SIZE[1])
        self.regions: dict[str, pygame.Rect] = {}

    def px(self, value: float) -> int:
        return max(1, round(value * self.scale))

    def font(self, size: float, bold: bool = False):
        return fonts.get(self.px(size), bold)

    def sizes(self, *design_sizes: float) -> list[int]:
        return [self.px(s) for s in design_sizes]

    def text(self, text: str, font, colour, pos: tuple[int, int], size: int) -> int:
        """Blit one line with its top at a line box starting at pos[1]; returns its width.

        The line box is size*1.3 high (layout.line_height_of); the glyph surface is taller
        (the font's ascent + descent), so shift it up to put the cap height in the box.
        """
        if not text:
            return 0
        image = font.render(text, True, colour)
        offset = font.get_ascent() - round(size * 1.0)
        self.surface.blit(image, (pos[0], pos[1] - offset))
        return image.get_width()

    def lines(self, fitted: FittedText, colour, x: int, y: int, width: int | None = None,
              centre: bool = False, region: str | None = None) -> int:
        """Draw fitted lines from y; returns the y below them."""
        if region and fitted.lines:
            widest = max(fitted.font.size(line)[0] for line in fitted.lines)
            self.regions[region] = pygame.Rect(x, y, widest, fitted.height)
        for line in fitted.lines:
            lx = x
            if centre and width is not None:
                lx = x + (width - fitted.font.size(line)[0]) // 2
            self.text(line, fitted.font, colour, (lx, y), fitted.size)
            y += fitted.line_height
        return y


def render(surface: pygame.Surface, model: ScreenModel) -> dict[str, pygame.Rect]:
    """Draw model on surface; returns the regions drawn.  Never raises: a drawing bug must not
    take the kiosk down, so it falls back to a plain title on the background and logs a line."""
    canvas = Canvas(surface)
    try:
        _render(canvas, model)
        return canvas.regions
    except Exception as exc:  # last line of defence of a kiosk
        print(f"batm-display: cannot draw screen {model.screen!r}: {exc!r}", file=sys.stderr)
        try:
            surface.fill(BACKGROUND)
            canvas = Canvas(surface)
            canvas.text(title_of(model)[:60], canvas.font(32, True), TEXT,
                        (canvas.px(32), canvas.px(32)), canvas.px(32))
        except Exception as inner:
            print(f"batm-display: fallback drawing failed too: {inner!r}", file=sys.stderr)
        return {}


def _render(c: Canvas, model: ScreenModel) -> None:
    spec = spec_for(model.screen)
    palette = PALETTES[spec.tone]
    c.surface.fill(BACKGROUND)

    margin = c.px(32)
    content_w = c.width - 2 * margin
    bar_h = _status_bar(c, palette, spec.label or palette.label)
    footer_top = _footer(c, model)
    bottom = footer_top - c.px(16)

    # The pairing QR code: top right on a landscape panel (beside title and text, so the code
    # tiles below keep the full width), at the bottom on a portrait one.
    qr = _reserve_qr(c, model, spec.body, margin, bar_h + c.px(16), bottom)
    beside = qr.w + c.px(24) if qr is not None and c.width >= c.height else 0
    if qr is not None and not beside:
        bottom = qr.y - c.px(12)

    # Icon and title side by side; the title may take two lines at a smaller size.
    y = bar_h + c.px(24)
    radius = c.px(26)
    _icon(c, spec.tone, palette, (margin + radius, y + radius), radius)
    title_x = margin + 2 * radius + c.px(18)
    title_w = c.width - margin - title_x - beside
    title = fit(lambda s: fonts.get(s, True), c.sizes(36, 32, 28, 24), title_of(model),
                title_w, 2 * line_height_of(c.px(24)))
    title_top = y + max(0, (2 * radius - title.height) // 2)
    c.lines(title, palette.accent, title_x, title_top, region="title")
    y = max(y + 2 * radius, title_top + title.height) + c.px(18)

    # Detail (e.g. the underlying error) sits at the bottom of the content area, small.
    if model.detail:
        detail = fit(lambda s: fonts.get(s), c.sizes(18, 16), model.detail, content_w,
                     2 * line_height_of(c.px(16)))
        bottom -= detail.height
        c.lines(detail, TEXT_MUTED, margin, bottom, region="detail")
        bottom -= c.px(12)

    if spec.body is Body.PAIRING_CODE:
        body_h = _pairing_code_height(c)
        text_sizes = c.sizes(22, 20, 18, 16)
    elif spec.body is Body.PROGRESS:
        body_h = _progress_height(c, spec.warning, content_w)
        text_sizes = c.sizes(24, 22, 20, 18)
    else:
        body_h = 0
        text_sizes = c.sizes(28, 26, 24, 22, 20, 18)

    text = text_of(model)
    text_room = max(line_height_of(text_sizes[-1]), bottom - y - body_h)
    if text:
        fitted = fit(lambda s: fonts.get(s), text_sizes, text, content_w - beside, text_room)
        y = c.lines(fitted, TEXT, margin, y, region="text") + c.px(18)
    if beside:
        y = max(y, qr.bottom + c.px(12))

    # The body sits in the middle of the space left, so the eye lands on it.
    body_y = y + max(0, (bottom - y - body_h) // 2)
    if spec.body is Body.PAIRING_CODE:
        _pairing_code(c, model, palette, margin, body_y, content_w)
    elif spec.body is Body.PROGRESS:
        _progress(c, model, palette, spec.warning, margin, body_y, content_w)
    if qr is not None:
        payload = pairing_payload((model.pairing_code or "").strip(), model.serial)
        c.regions["qr"] = draw_qr(c.surface, qr, payload)


def _reserve_qr(c: Canvas, model: ScreenModel, body: Body, margin: int, top: int,
                bottom: int) -> pygame.Rect | None:
    """Where the pairing QR code (code + serial, for the operator's phone) goes, if there is
    room for one a phone can read (>= 120 design px)."""
    if body is not Body.PAIRING_CODE or not (model.pairing_code or "").strip():
        return None
    if c.width >= c.height:
        side = min(c.px(168), (bottom - top) // 2)
        rect = pygame.Rect(c.width - margin - side, top, side, side)
    else:
        side = min(c.px(240), c.width - 2 * margin, (bottom - top) // 2)
        rect = pygame.Rect((c.width - side) // 2, bottom - side, side, side)
    return rect if side >= c.px(120) else None


def _status_bar(c: Canvas, palette: Palette, label: str) -> int:
    height = c.px(44)
    c.regions["status_bar"] = pygame.Rect(0, 0, c.width, height)
    pygame.draw.rect(c.surface, palette.accent, c.regions["status_bar"])
    size = c.px(20)
    font = fonts.get(size, True)
    label = truncate(font, label, c.width - 2 * c.px(32))
    top = (height - line_height_of(size)) // 2
    c.text(label, font, palette.on_accent, (c.px(32), top), size)
    return height


def _footer(c: Canvas, model: ScreenModel) -> int:
    """Serial, version and server, always, so a technician can read them off any screen.
    One line when they fit (server on the right), else two (portrait panels)."""
    size = c.px(16)
    font = fonts.get(size)
    margin = c.px(32)
    room = c.width - 2 * margin
    left = f"Serial {model.serial or '—'}      Version {model.version or '—'}"
    right = f"Server {model.server}" if model.server else ""
    one_line = not right or font.size(left)[0] + c.px(24) + font.size(right)[0] <= room
    pad = c.px(10)
    height = line_height_of(size) * (1 if one_line else 2) + 2 * pad
    top = c.height - height
    c.regions["footer"] = pygame.Rect(0, top, c.width, height)
    pygame.draw.rect(c.surface, SURFACE, c.regions["footer"])
    y = top + pad
    c.text(truncate(font, left, room), font, TEXT_MUTED, (margin, y), size)
    if right and one_line:
        c.text(right, font, TEXT_MUTED, (c.width - margin - font.size(right)[0], y), size)
    elif right:
        c.text(truncate(font, right, room), font, TEXT_MUTED,
               (margin, y + line_height_of(size)), size)
    return top


def _icon(c: Canvas, tone: Tone, palette: Palette, centre: tuple[int, int], r: int) -> None:
    """A filled disc with a symbol: the tone is shown by shape as well as by colour."""
    c.regions["icon"] = pygame.Rect(centre[0] - r, centre[1] - r, 2 * r, 2 * r)
    pygame.draw.aacircle(c.surface, palette.accent, centre, r)
    pygame.draw.circle(c.surface, palette.accent, centre, r - 1)
    cx, cy = centre
    ink = palette.on_accent
    stroke = max(2, r // 5)
    if tone is Tone.OK:  # check mark
        points = [(cx - r * 0.45, cy + r * 0.02), (cx - r * 0.12, cy + r * 0.36),
                  (cx + r * 0.48, cy - r * 0.32)]
        pygame.draw.lines(c.surface, ink, False, points, stroke)
    elif tone is Tone.WAIT:  # clock hands: "this takes a while"
        pygame.draw.circle(c.surface, ink, centre, round(r * 0.68), max(2, stroke // 2 + 1))
        pygame.draw.line(c.surface, ink, centre, (cx, cy - r * 0.45), stroke)
        pygame.draw.line(c.surface, ink, centre, (cx + r * 0.35, cy), stroke)
        pygame.draw.circle(c.surface, ink, centre, stroke // 2 + 1)
    else:  # "!" for errors, "i" for information
        glyph = "!" if tone is Tone.ERROR else "i"
        font = fonts.get(round(r * 1.35), True)
        image = font.render(glyph, True, ink)
        # Centre the glyph's ink, not its line box (the box includes descender space).
        bounds = image.get_bounding_rect()
        c.surface.blit(image, (cx - bounds.centerx, cy - bounds.centery))


# --- pairing code ---------------------------------------------------------------------------

def _pairing_code_height(c: Canvas) -> int:
    return c.px(88 * 1.3) + c.px(16) + line_height_of(c.px(20))


def _code_tiles_layout(c: Canvas, groups: list[str], width: int):
    """The largest tile font size (from 88 design px down) at which the code fits width."""
    size = c.px(88)
    while True:
        font = fonts.get(size, True)
        glyph_w = max(font.size(ch)[0] for ch in CODE_ALPHABET + "".join(groups))
        tile_w = glyph_w + 2 * max(2, size // 9)
        gap = max(2, size // 12)
        group_gap = max(gap, round(size * 0.5))
        n_chars = sum(len(g) for g in groups)
        total = n_chars * tile_w + (n_chars - len(groups)) * gap + (len(groups) - 1) * group_gap
        if total <= width or size <= 12:
            return font, size, tile_w, gap, group_gap, total
        size = max(12, int(size * 0.9))


def _pairing_code(c: Canvas, model: ScreenModel, palette: Palette, x: int, y: int,
                  width: int) -> None:
    tile_h = c.px(88 * 1.3)
    code = (model.pairing_code or "").strip()
    if not code:
        size = c.px(28)
        font = fonts.get(size, True)
        msg = truncate(font, "Waiting for the pairing code from the server...", width)
        c.text(msg, font, palette.accent, (x, y + (tile_h - line_height_of(size)) // 2), size)
        c.regions["code_placeholder"] = pygame.Rect(x, y, font.size(msg)[0], tile_h)
    else:
        # The code is shown exactly as the agent grouped it ("XXXX-XXXX"): the operator reads
        # the same groups in CAS.  Hyphens become visible gaps with a dash, so it can be read
        # aloud group by group.
        groups = [g for g in code.replace(" ", "-").split("-") if g] or [code]
        font, size, tile_w, gap, group_gap, total = _code_tiles_layout(c, groups, width)
        cx = x + max(0, (width - total) // 2)
        radius = max(2, size // 10)
        tile_top = y + max(0, (tile_h - round(size * 1.3)) // 2)
        th = round(size * 1.3)
        tiles: list[pygame.Rect] = []
        for gi, group in enumerate(groups):
            if gi:
                dash_w, dash_h = max(4, group_gap // 2), max(3, size // 12)
                pygame.draw.rect(c.surface, TEXT_MUTED,
                                 (cx + (group_gap - dash_w) // 2, tile_top + (th - dash_h) // 2,
                                  dash_w, dash_h), border_radius=dash_h // 2)
                cx += group_gap
            for i, ch in enumerate(group):
                if i:
                    cx += gap
                rect = pygame.Rect(cx, tile_top, tile_w, th)
                c.regions[f"code_tile_{len(tiles)}"] = rect
                tiles.append(rect)
                pygame.draw.rect(c.surface, SURFACE, rect, border_radius=radius)
                image = font.render(ch, True, TEXT)
                bounds = image.get_bounding_rect()
                c.surface.blit(image, (rect.centerx - image.get_width() // 2,
                                       rect.centery - bounds.centery))
                cx += tile_w
        c.regions["code"] = tiles[0].unionall(tiles[1:])
    # Serial and server beside the code: the operator matches the request in CAS by them.
    size = c.px(20)
    font = fonts.get(size)
    parts = [f"Terminal {model.serial}" if model.serial else "",
             f"Server {model.server}" if model.server else ""]
    info = truncate(font, "      ".join(p for p in parts if p), width)
    if info:
        info_w = font.size(info)[0]
        info_pos = (x + (width - info_w) // 2, y + tile_h + c.px(16))
        c.text(info, font, TEXT_MUTED, info_pos, size)
        c.regions["code_info"] = pygame.Rect(*info_pos, info_w, line_height_of(size))


# --- upgrade progress -----------------------------------------------------------------------

def _fit_warning(c: Canvas, warning: str, width: int) -> FittedText:
    # Wrapped, never cut: "do not power off" must be read in full.
    return fit(lambda s: fonts.get(s, True), c.sizes(26, 22, 18), f"⚠  {warning}", width,
               2 * line_height_of(c.px(26)))


def _progress_height(c: Canvas, warning: str | None, width: int) -> int:
    h = line_height_of(c.px(24)) + c.px(10) + c.px(28)
    if warning:
        h += c.px(18) + _fit_warning(c, warning, width).height
    return h


def _progress(c: Canvas, model: ScreenModel, palette: Palette, warning: str | None,
              x: int, y: int, width: int) -> None:
    size = c.px(24)
    bold = fonts.get(size, True)
    if model.step is not None and model.steps is not None:
        c.text(f"Step {model.step} of {model.steps}", bold, TEXT, (x, y), size)
    elif model.step is not None:
        c.text(f"Step {model.step}", bold, TEXT, (x, y), size)
    percent = f"{model.progress:.0f} %" if model.progress is not None else ""
    if percent:
        c.text(percent, bold, palette.accent, (x + width - bold.size(percent)[0], y), size)
    y += line_height_of(size) + c.px(10)

    bar = pygame.Rect(x, y, width, c.px(28))
    c.regions["progress_bar"] = bar
    radius = bar.height // 2
    pygame.draw.rect(c.surface, SURFACE, bar, border_radius=radius)
    if model.progress is not None and model.progress > 0:
        fill = bar.copy()
        fill.width = max(bar.height, round(bar.width * model.progress / 100))
        c.regions["progress_fill"] = fill
        pygame.draw.rect(c.surface, palette.accent, fill, border_radius=radius)
    y = bar.bottom

    if warning:
        # ⚠ comes from the CJK font (Miscellaneous Symbols); the words carry the meaning.
        c.lines(_fit_warning(c, warning, width), palette.accent, x, y + c.px(18),
                region="warning")
