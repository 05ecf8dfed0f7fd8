"""Signed gate requests (docs/protocol.md §2): the terminal proves it holds its identity key.

Both the terminal (sign) and the server (verify) use this module, so the canonical string is
defined once.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from batm_common.digits import decimal

HEADER_SERIAL = "X-BATM-Serial"
HEADER_TIMESTAMP = "X-BATM-Timestamp"
HEADER_SIGNATURE = "X-BATM-Signature"
# The body's SHA-256 (hex), which the signature covers anyway: sent as a header so that the
# server can check the signature *before* it reads a large body (the log upload), then check
# the body against it while streaming it to disk.
HEADER_CONTENT_SHA256 = "X-BATM-Content-SHA256"
HEADER_SERVER_TIME = "X-BATM-Server-Time"  # unix seconds, on a clock_skew refusal
# 16 random bytes (base64url) in every signed request, covered by the signature (v2): the server
# refuses a nonce it has seen within the timestamp window, so a request cannot be replayed.
HEADER_NONCE = "X-BATM-Nonce"
NONCE_BYTES = 16
MAX_CLOCK_SKEW = 300  # seconds


class SignatureError(Exception):
    """The request is not signed by the key it claims."""


class ClockSkewError(SignatureError):
    """The signer's clock is more than MAX_CLOCK_SKEW off ours (a Raspberry Pi has no RTC):
    answered distinctly, with our time, so that the terminal can correct and stay paired."""

    def __init__(self, message: str, server_time: int):
        super().__init__(message)
        self.server_time = server_time


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64url text")
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError("not valid base64url") from exc


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical(method: str, path_with_query: str, timestamp: str, body_sha256: str,
              nonce: str | None = None) -> bytes:
    """v2 with a nonce (replay protection), v1 without (older terminals: replays of a v1
    request are caught by its signature, which is deterministic)."""
    if nonce is None:
        fields = ["batm-req-v1", method.upper(), path_with_query, timestamp, body_sha256]
    else:
        fields = ["batm-req-v2", method.upper(), path_with_query, timestamp, nonce, body_sha256]
    return "\n".join(fields).encode()


def sign_headers(
    key: Ed25519PrivateKey, serial: str, method: str, path_with_query: str, body: bytes,
    now: float | None = None,
) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    digest = body_digest(body)
    nonce = b64url(secrets.token_bytes(NONCE_BYTES))
    signature = key.sign(canonical(method, path_with_query, timestamp, digest, nonce))
    return {
        HEADER_SERIAL: serial,
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: b64url(signature),
        HEADER_CONTENT_SHA256: digest,
    }


def verify(
    public_key_raw: bytes, method: str, path_with_query: str, body_sha256: str,
    timestamp: str | None, signature: str | None, now: float | None = None,
    nonce: str | None = None,
) -> None:
    """Raise SignatureError with a reason unless the request is properly signed; `body_sha256`
    is body_digest(body), or the header's digest when the body is checked later."""
    if not timestamp or not signature:
        raise SignatureError("the request is not signed")
    seconds = decimal(timestamp, max_digits=12)
    if seconds is None:
        raise SignatureError("the signature timestamp is not a whole number of seconds "
                             "(ASCII digits)")
    now = time.time() if now is None else now
    if abs(now - seconds) > MAX_CLOCK_SKEW:
        raise ClockSkewError(
            f"the signature timestamp is {seconds - int(now):+d} s from the server's clock "
            f"(allowed ±{MAX_CLOCK_SKEW} s); the server's time is {int(now)}", int(now))
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key_raw)
        if nonce is not None and len(unb64url(nonce)) != NONCE_BYTES:
            raise ValueError("bad nonce")
        key.verify(unb64url(signature),
                   canonical(method, path_with_query, timestamp, body_sha256, nonce))
    except (InvalidSignature, ValueError) as exc:
        raise SignatureError("the signature does not match the terminal's key") from exc


def fingerprint(public_key_raw: bytes) -> str:
    return hashlib.sha256(public_key_raw).hexdigest()[:16]
