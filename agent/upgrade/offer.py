"""What the gate's `upgrade_required` answer means, as plain data (docs/protocol.md §2).

Pure: the state machine carries these values; the gate client parses them; the upgrade adapter
acts on them. Parsing refuses a malformed answer with a sentence naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEX64 = re.compile(r"^[0-9a-f]{64}$")
URL_PATH = re.compile(r"^/api/v1/firmware/[0-9]{1,12}/bundle$")
MAX_RETRY_AFTER = 3600.0


class OfferError(ValueError):
    """The gate's upgrade answer is malformed; str() names the field."""


@dataclass(frozen=True)
class UpgradeOffer:
    """One step of the gate's upgrade plan: install `version` from `url` (a gate path)."""

    version: int
    url: str
    size: int
    sha256: str
    step: int
    steps: int
    spki_sha256: str  # the gate's TLS key as seen in the hello: the download must come from it


@dataclass(frozen=True)
class UpgradeWait:
    """No step now (the gate is busy upgrading others, or has no path): ask again later."""

    retry_after: float
    message: str


def _int(data: dict, name: str, low: int, high: int) -> int:
    value = data.get(name)
    if type(value) is not int or not low <= value <= high:
        raise OfferError(f"{name}: must be an integer from {low} to {high}, got {value!r}")
    return value


def parse_upgrade_answer(data: dict, spki_sha256: str) -> UpgradeOffer | UpgradeWait:
    nxt = data.get("next")
    message = data.get("message") if isinstance(data.get("message"), str) else ""
    if nxt is None:
        retry = data.get("retry_after")
        if isinstance(retry, bool) or not isinstance(retry, int | float) or not (
                0 < retry <= MAX_RETRY_AFTER):
            raise OfferError(f"retry_after: must be 1..{MAX_RETRY_AFTER:g} seconds, got {retry!r}")
        return UpgradeWait(float(retry), message[:300] or "the server will upgrade this "
                                                         "terminal later")
    if not isinstance(nxt, dict):
        raise OfferError("next: must be an object or null")
    url, sha256 = nxt.get("url"), nxt.get("sha256")
    if not isinstance(url, str) or not URL_PATH.match(url):
        raise OfferError(f"next.url: must be a path like /api/v1/firmware/<id>/bundle, "
                         f"got {url!r}")
    if not isinstance(sha256, str) or not HEX64.match(sha256):
        raise OfferError("next.sha256: must be 64 lowercase hex digits")
    steps = _int(data, "steps", 1, 100)
    return UpgradeOffer(
        version=_int(nxt, "version", 19700101, 99991231), url=url,
        size=_int(nxt, "size", 1, 1 << 40), sha256=sha256,
        step=_int(data, "step", 1, steps), steps=steps, spki_sha256=spki_sha256)
