"""Parse one JSON object from bytes: the first step of every payload a peer sends us.

MQTT payloads, gate request bodies and control-socket lines all start here, so the refusal
sentences are the same everywhere. Callers turn `NotAJsonObject` into their own error type.
"""

from __future__ import annotations

import json
from typing import Any


class NotAJsonObject(ValueError):
    """The bytes are too long, not JSON, or JSON but not an object; str() says which."""


def parse_object(
    payload: bytes | str, what: str, *, max_bytes: int | None = None
) -> dict[str, Any]:
    """`payload` as a dict; NotAJsonObject("<what>: …") naming the problem otherwise."""
    if max_bytes is not None and len(payload) > max_bytes:
        raise NotAJsonObject(f"{what}: {len(payload)} bytes is over the {max_bytes}-byte limit")
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise NotAJsonObject(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise NotAJsonObject(f"{what}: must be a JSON object")
    return value
