"""Touch, mouse and keyboard, turned into one kind of pointer event in upright screen coordinates.

Three things go wrong with touch panels under SDL if done naively, and are handled here:

- FINGERDOWN/FINGERMOTION/FINGERUP carry x, y *normalised* to 0..1 of the window: they are
  multiplied by the window size, not used as pixels.
- SDL synthesises mouse events from touches (SDL_HINT_TOUCH_MOUSE_EVENTS, on by default); those
  carry `event.touch == True` in pygame-ce and are dropped, so a tap is handled once, not twice.
  A real mouse (no `touch` flag) still works, with its left button.
- The panel may be mounted rotated (`--rotation 0|90|180|270`, clockwise, the way the picture is
  turned on the panel). The screen is drawn upright on a logical canvas and turned onto the
  window; pointer positions are turned back the other way (to_logical) so hit tests happen in
  the same coordinates as drawing.

Only one finger is followed (the first down until it is up): a kiosk UI has no multi-touch
gestures, and a palm resting on the panel must not produce a stream of taps.
"""

from __future__ import annotations

from dataclasses import dataclass

ROTATIONS = (0, 90, 180, 270)


@dataclass(frozen=True)
class Pointer:
    kind: str  # "down", "move" or "up"
    pos: tuple[int, int]  # logical (upright) coordinates


@dataclass(frozen=True)
class Key:
    key: int  # pygame key code
    mod: int  # pygame modifier bits
    text: str  # the character typed, "" for none


def logical_size(window_size: tuple[int, int], rotation: int) -> tuple[int, int]:
    """The upright canvas for a window on a panel turned by rotation degrees."""
    w, h = window_size
    return (h, w) if rotation in (90, 270) else (w, h)


def to_logical(pos: tuple[float, float], window_size: tuple[int, int],
               rotation: int) -> tuple[int, int]:
    """A window (panel) position as a position on the upright canvas.

    The canvas is turned clockwise by `rotation` onto the window, so canvas (lx, ly) lands at
    90: (W-1-ly, lx), 180: (W-1-lx, H-1-ly), 270: (ly, H-1-lx) — inverted here.
    """
    w, h = window_size
    x = min(max(int(pos[0]), 0), w - 1)
    y = min(max(int(pos[1]), 0), h - 1)
    if rotation == 90:
        return y, w - 1 - x
    if rotation == 180:
        return w - 1 - x, h - 1 - y
    if rotation == 270:
        return h - 1 - y, x
    return x, y


class InputMapper:
    """pygame events → Pointer/Key, for one window size and rotation."""

    def __init__(self, window_size: tuple[int, int], rotation: int = 0) -> None:
        if rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, not {rotation!r}")
        self.window_size = window_size
        self.rotation = rotation
        self._finger: int | None = None  # the finger being followed
        self._mouse_down = False

    def map(self, event) -> Pointer | Key | None:
        import pygame

        t = event.type
        if t in (pygame.FINGERDOWN, pygame.FINGERMOTION, pygame.FINGERUP):
            return self._finger_event(event, t)
        if t in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP, pygame.MOUSEMOTION):
            if getattr(event, "touch", False):
                return None  # SDL's copy of a touch we already handle as a finger
            return self._mouse_event(event, t)
        if t == pygame.KEYDOWN:
            return Key(event.key, event.mod, getattr(event, "unicode", "") or "")
        return None

    def _point(self, x: float, y: float) -> tuple[int, int]:
        return to_logical((x, y), self.window_size, self.rotation)

    def _finger_event(self, event, t) -> Pointer | None:
        import pygame

        finger = (getattr(event, "touch_id", 0), getattr(event, "finger_id", 0))
        w, h = self.window_size
        pos = self._point(event.x * w, event.y * h)
        if t == pygame.FINGERDOWN:
            if self._finger is not None or self._mouse_down:
                return None
            self._finger = finger
            return Pointer("down", pos)
        if finger != self._finger:
            return None
        if t == pygame.FINGERUP:
            self._finger = None
            return Pointer("up", pos)
        return Pointer("move", pos)

    def _mouse_event(self, event, t) -> Pointer | None:
        import pygame

        if t == pygame.MOUSEMOTION:
            return Pointer("move", self._point(*event.pos)) if self._mouse_down else None
        if event.button != 1:
            return None
        if t == pygame.MOUSEBUTTONDOWN:
            if self._finger is not None or self._mouse_down:
                return None
            self._mouse_down = True
            return Pointer("down", self._point(*event.pos))
        if not self._mouse_down:
            return None
        self._mouse_down = False
        return Pointer("up", self._point(*event.pos))


def is_admin_shortcut(key: Key) -> bool:
    """Ctrl+Alt+A: the keyboard way into the advanced administration."""
    import pygame

    return (key.key == pygame.K_a and bool(key.mod & pygame.KMOD_CTRL)
            and bool(key.mod & pygame.KMOD_ALT))
