"""The hidden way in: a long press in the top-left corner.

A customer taps buttons, and a stray touch in a corner is brief; holding a finger still in the
corner for HOLD seconds is deliberate. The press fires while still held (the technician sees the
PIN pad appear and can let go); moving out of the corner or lifting earlier cancels it. The
corner is CORNER design pixels square (scaled like everything else), in upright coordinates.
"""

from __future__ import annotations

HOLD = 3.0
CORNER = 96  # design px: 14 mm on the 7-inch panel


class LongPress:
    def __init__(self, hold: float = HOLD, corner: int = CORNER) -> None:
        self.hold = hold
        self.corner = corner
        self.started: float | None = None
        self.scale = 1.0

    def _in_corner(self, pos: tuple[int, int]) -> bool:
        limit = self.corner * self.scale
        return pos[0] < limit and pos[1] < limit

    def down(self, pos: tuple[int, int], now: float, scale: float = 1.0) -> None:
        self.scale = scale
        self.started = now if self._in_corner(pos) else None

    def move(self, pos: tuple[int, int]) -> None:
        if self.started is not None and not self._in_corner(pos):
            self.started = None

    def up(self) -> None:
        self.started = None

    def deadline(self) -> float | None:
        return None if self.started is None else self.started + self.hold

    def due(self, now: float) -> bool:
        """True once, when the press has been held long enough."""
        if self.started is not None and now >= self.started + self.hold:
            self.started = None
            return True
        return False
