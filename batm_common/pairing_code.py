"""The pairing code: a short authentication string both sides derive independently.

See docs/protocol.md §1. The terminal and the server each compute the code from the keys *they*
saw; a TLS interceptor changes at least one of them, so the operator sees two different codes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

DOMAIN = b"batm-pairing-code-v1"
# Crockford base32: no I, L, O, U, so a code read aloud or typed loosely stays unambiguous.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_SYMBOLS = 8
NONCE_BYTES = 32
_LOOSE = str.maketrans({"O": "0", "I": "1", "L": "1"})


class CodeFormatError(ValueError):
    """A typed code that cannot be a pairing code."""


def _length_prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def commitment(terminal_nonce: bytes) -> str:
    """What the terminal sends in its hello before it may see the server nonce."""
    return hashlib.sha256(terminal_nonce).hexdigest()


def verify_commitment(commitment_hex: str, terminal_nonce: bytes) -> bool:
    return hmac.compare_digest(commitment_hex.lower(), commitment(terminal_nonce))


def derive(
    terminal_identity_key: bytes,
    server_spki_der: bytes,
    server_nonce: bytes,
    terminal_nonce: bytes,
) -> str:
    """The code as "XXXX-XXXX"."""
    for name, value in (("server nonce", server_nonce), ("terminal nonce", terminal_nonce)):
        if len(value) != NONCE_BYTES:
            raise ValueError(f"{name} must be {NONCE_BYTES} bytes, got {len(value)}")
    digest = hashlib.sha256(
        DOMAIN
        + _length_prefixed(terminal_identity_key)
        + _length_prefixed(server_spki_der)
        + _length_prefixed(server_nonce)
        + _length_prefixed(terminal_nonce)
    ).digest()
    bits = int.from_bytes(digest[:5], "big")  # 40 bits = 8 symbols of 5 bits
    symbols = [ALPHABET[(bits >> (5 * (CODE_SYMBOLS - 1 - i))) & 31] for i in range(CODE_SYMBOLS)]
    return "".join(symbols[:4]) + "-" + "".join(symbols[4:])


def normalize(typed: str) -> str:
    """Canonical form of a code typed by a person: "abcd efgh", "ABCD-EFGH", "oIl…" all work."""
    cleaned = "".join(ch for ch in typed.upper() if ch not in " -\t").translate(_LOOSE)
    if len(cleaned) != CODE_SYMBOLS:
        raise CodeFormatError(
            f"a pairing code has {CODE_SYMBOLS} characters (like ABCD-1234), got {len(cleaned)}"
        )
    bad = sorted({ch for ch in cleaned if ch not in ALPHABET})
    if bad:
        raise CodeFormatError(f"a pairing code cannot contain {', '.join(map(repr, bad))}")
    return cleaned[:4] + "-" + cleaned[4:]


def matches(expected: str, typed: str) -> bool:
    """Constant-time comparison of a stored code with one an operator typed."""
    return hmac.compare_digest(normalize(expected), normalize(typed))
