"""Second factor: TOTP (RFC 6238, 30-second steps, 6 digits), enrolled when the user is made.

A code is accepted one step early or late (clock drift between the server and the phone), and
only once: the user's last accepted step is kept, so a code seen over a shoulder is useless.
"""

from __future__ import annotations

import datetime

import pyotp

ISSUER = "BATM console"
DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(name: str, secret: str) -> str:
    """otpauth://totp/... for an authenticator app (as text or a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=ISSUER)


def code_at(secret: str, moment: datetime.datetime) -> str:
    """The code an authenticator shows at `moment` (tests and the demo log in with it)."""
    return pyotp.TOTP(secret).at(moment)


def accepted_step(secret: str, code: str, moment: datetime.datetime,
                  last_step: int | None) -> int | None:
    """The time step `code` belongs to, if it is valid now and newer than `last_step`."""
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(moment)
    for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if pyotp.utils.strings_equal(totp.generate_otp(step), code):
            return step
    return None
