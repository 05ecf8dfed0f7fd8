"""Whole numbers from text that came from outside: ASCII digits only, and not too many of them.

str.isdigit() is True for "²" and other non-ASCII digits, which int() then refuses (issue 13,
item 7: a timestamp header of "²" was a 500); and int() of thousands of digits is slow or refused
(sys.set_int_max_str_digits). Every parse of untrusted digits goes through here.
"""

from __future__ import annotations

MAX_DIGITS = 19  # enough for any 64-bit value


def decimal(text: object, max_digits: int = MAX_DIGITS) -> int | None:
    """The value of `text` when it is 1..max_digits ASCII digits, else None."""
    if not isinstance(text, str) or not 0 < len(text) <= max_digits:
        return None
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text)
