"""The screen model as the display uses it, parsed defensively from the agent's JSON.

The agent is the only source of screen models, but a display that dies on one odd field shows a
frozen or black screen to a customer, so parsing never raises: a missing or mistyped field
becomes None (and the renderer falls back to the screen's default wording), absurdly long text
is cut, and control characters that fonts cannot draw are removed.  See docs/protocol.md §4 for
the fields.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import Any

# Longer than any sentence a screen needs; keeps a runaway string from costing seconds of
# text layout on a Raspberry Pi.
MAX_TEXT = 1000
MAX_SHORT = 120  # serials, versions, addresses, pairing codes, screen ids

# Everything below U+0020 except newline, plus DEL and the C1 controls: SDL_ttf draws them as
# boxes at best, and a NUL makes pygame's font.render raise.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
# Lone surrogates (possible from json.loads of "\ud800") cannot be encoded for SDL.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True)
class ScreenModel:
    screen: str = ""
    title: str | None = None
    text: str | None = None
    pairing_code: str | None = None
    serial: str | None = None
    version: str | None = None
    server: str | None = None
    progress: float | None = None
    step: int | None = None
    steps: int | None = None
    detail: str | None = None
    seq: int | None = None

    def visual_key(self) -> tuple:
        """Everything that changes what is drawn (not seq: a re-sent identical screen is no
        change, so it costs no redraw and writes no screenshot)."""
        return tuple(getattr(self, f.name) for f in fields(self) if f.name != "seq")


def clean_text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """A displayable string, or None if there is nothing sensible to show."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.replace("\r\n", "\n").replace("\t", " ")
    value = _SURROGATE.sub("\ufffd", _CONTROL.sub("", value)).strip()
    if len(value) > limit:
        value = value[: limit - 3].rstrip() + "..."
    return value or None


def _int(value: Any) -> int | None:
    # bool is an int subclass; "step": true is a bug, not step 1.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _progress(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value):
        return None
    return float(min(100.0, max(0.0, value)))


def _screen_id(value: Any) -> str:
    text = clean_text(value, MAX_SHORT)
    # Ids are identifiers; anything else is kept only as far as it is one, so it can name a
    # screenshot file safely.
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower() if text else ""


def parse_screen(raw: Any) -> ScreenModel:
    """Turn whatever the agent sent into a ScreenModel.  Never raises."""
    if not isinstance(raw, dict):
        return ScreenModel()
    step, steps = _int(raw.get("step")), _int(raw.get("steps"))
    if steps is not None and steps < 1:
        steps = None
    if step is not None and (step < 1 or (steps is not None and step > steps)):
        step = None
    return ScreenModel(
        screen=_screen_id(raw.get("screen")),
        title=clean_text(raw.get("title"), MAX_SHORT * 2),
        text=clean_text(raw.get("text")),
        pairing_code=clean_text(raw.get("pairing_code"), MAX_SHORT),
        serial=clean_text(raw.get("serial"), MAX_SHORT),
        version=clean_text(raw.get("version"), MAX_SHORT),
        server=clean_text(raw.get("server"), MAX_SHORT),
        progress=_progress(raw.get("progress")),
        step=step,
        steps=steps,
        detail=clean_text(raw.get("detail")),
        seq=_int(raw.get("seq")),
    )
