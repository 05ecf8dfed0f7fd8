"""What a terminal's MQTT payloads must look like, checked field by field.

A bad payload is refused with a sentence naming the field (PayloadError); the ingest counts it
on the terminal's status row and stores nothing of it.
"""

from __future__ import annotations

import math
import re

from batm_common.jsondoc import NotAJsonObject, parse_object
from server.db.dialect import storable_text

MAX_PAYLOAD = 64 * 1024  # bytes; the broker's own limit (master/broker.py) sits well above
EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class PayloadError(ValueError):
    """A terminal's MQTT payload is unusable; str() says why."""


def parse(payload: bytes, what: str) -> dict:
    try:
        return parse_object(payload, what, max_bytes=MAX_PAYLOAD)
    except NotAJsonObject as exc:
        raise PayloadError(str(exc)) from None


MIN_INT, MAX_INT = -(2**63), 2**63 - 1  # what the database stores


def field(obj: dict, name: str, types: type | tuple, what: str, *, optional: bool = True,
          max_len: int = 500):
    """obj[name] if it has one of `types` (bool is not an int here); None if absent and
    optional; PayloadError naming `what` and the field otherwise."""
    value = obj.get(name)
    if value is None:
        if optional:
            return None
        raise PayloadError(f"{what}: {name} is missing")
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise PayloadError(f"{what}: {name} must be {_names(types)}, got bool")
    if not isinstance(value, types):
        raise PayloadError(f"{what}: {name} must be {_names(types)}, got {type(value).__name__}")
    if isinstance(value, str) and len(value) > max_len:
        raise PayloadError(f"{what}: {name} is longer than {max_len} characters")
    if isinstance(value, str) and not storable_text(value):
        raise PayloadError(f"{what}: {name} contains a NUL character")
    if isinstance(value, str) and not _encodable(value):
        # JSON's "\ud800" escape decodes to a lone surrogate, which no database driver can
        # encode: the batch failed, and the ingest retried it for ever (a terminal could stop
        # every terminal's monitoring on its replica).
        raise PayloadError(f"{what}: {name} contains an unpaired surrogate (\\ud800-\\udfff)")
    if isinstance(value, float) and not math.isfinite(value):
        # Python's json reads NaN and Infinity; neither is a reading, and SQLite would store
        # NULL for NaN where PostgreSQL keeps it: refused, the same on both.
        raise PayloadError(f"{what}: {name} must be a finite number, got {value}")
    if isinstance(value, int) and not isinstance(value, bool) and not MIN_INT <= value <= MAX_INT:
        # Found by tests/test_fuzz.py: SQLite's INTEGER is 64-bit, and the overflow failed the
        # whole ingest batch instead of refusing one message.
        raise PayloadError(f"{what}: {name} is out of range ({MIN_INT}..{MAX_INT})")
    return value


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _names(types: type | tuple) -> str:
    items = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in items)
