"""Passwords: argon2id hashes (argon2-cffi's RFC 9106 low-memory profile), and what is long
enough.

Verifying an unknown user's password still costs one hash, so the time a login takes does not
tell an attacker which names exist.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

from server.errors import ServiceError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # hashing is deliberately slow; nobody needs a megabyte password

_HASHER = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)  # argon2id
_DUMMY = _HASHER.hash("not a password anyone has")


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise ServiceError(400, "weak_password",
                           f"the password is shorter than {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ServiceError(400, "bad_request",
                           f"the password is longer than {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    check_strength(password)
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when `password` matches `stored`; with stored None, spends the same time, False."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
