"""Reading a request's fields: JSON bodies field by field, query values; a bad one is refused
with a sentence naming the field.

FastAPI's own body validation answers 422 with its own shape; the protocol wants 400
{"error": "bad_request", "message": ...}, so the APIs read raw bodies and use these helpers.
"""

from __future__ import annotations

import re

from batm_common.digits import decimal
from batm_common.jsondoc import NotAJsonObject, parse_object
from batm_common.signing import unb64url
from server.db.dialect import storable_text
from server.errors import bad_request

_HEX = re.compile(r"^[0-9a-fA-F]*$")


def json_object(body: bytes) -> dict:
    if not body.strip():
        raise bad_request("the request body is empty; a JSON object was expected")
    try:
        return parse_object(body, "the request body")
    except NotAJsonObject as exc:
        raise bad_request(str(exc)) from None


def _present(obj: dict, name: str) -> object:
    if name not in obj:
        raise bad_request(f"{name}: this field is missing")
    return obj[name]


def text(obj: dict, name: str, *, max_len: int = 200, optional: bool = False) -> str | None:
    if optional and obj.get(name) is None:
        return None
    value = _present(obj, name)
    if not isinstance(value, str):
        raise bad_request(f"{name}: must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise bad_request(f"{name}: longer than {max_len} characters")
    if not storable_text(value):
        raise bad_request(f"{name}: contains a NUL character")
    return value


def integer(obj: dict, name: str, *, minimum: int = 0, maximum: int = 2**31 - 1) -> int:
    value = _present(obj, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name}: must be an integer, got {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise bad_request(f"{name}: {value} is outside {minimum}..{maximum}")
    return value


def b64url_bytes(obj: dict, name: str, length: int) -> bytes:
    value = text(obj, name, max_len=4 * length)
    assert value is not None
    try:
        raw = unb64url(value)
    except ValueError as exc:
        raise bad_request(f"{name}: not valid base64url") from exc
    if len(raw) != length:
        raise bad_request(f"{name}: must encode {length} bytes, got {len(raw)}")
    return raw


def hex_digest(obj: dict, name: str, length: int) -> str:
    value = text(obj, name, max_len=2 * length)
    assert value is not None
    if len(value) != 2 * length or not _HEX.match(value):
        raise bad_request(f"{name}: must be {2 * length} hexadecimal digits")
    return value.lower()


def wait_seconds(raw: str | None, maximum: int = 30) -> float:
    """The ?wait=S of a long-poll: 0 (answer now) when absent."""
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError as exc:
        raise bad_request(f"wait: {raw!r} is not a number of seconds") from exc
    if not 0 <= value <= maximum:  # also refuses nan
        raise bad_request(f"wait: must be from 0 to {maximum} seconds, got {raw}")
    return value


def int_query(raw: str | None, name: str, default: int, maximum: int) -> int:
    """A whole-number query value from 0 to `maximum`; `default` when absent."""
    if raw is None or raw == "":
        return default
    value = decimal(raw)
    if value is None or value > maximum:
        raise bad_request(f"{name}: must be an integer from 0 to {maximum}, got {raw!r}")
    return value
