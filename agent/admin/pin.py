"""The advanced-administration PIN: stored hashed, with a lockout that survives restarts.

File: `state_dir/admin-pin.json` (mode 0600, written with batm_common.atomic.atomic_write):

    {"format": 1, "kdf": "scrypt", "n": 16384, "r": 8, "p": 1, "salt": hex, "hash": hex,
     "must_change": bool, "failures": int, "lockouts": int, "locked_until": unix seconds}

- The PIN is never stored, only scrypt(PIN, salt) with its parameters, so a stolen SD card does
  not give the PIN away cheaply (a 6-digit PIN is still brute-forceable offline; the hash is
  there so that it costs ~1 s per 20 guesses, not nothing).
- Factory default: FACTORY_PIN ("000000") with must_change=true. A missing file means exactly
  that; it is written on the first attempt, so a lockout is persisted even before anyone set a
  PIN. Deleting the file (root on the device) is the documented recovery: it restores the
  factory PIN, which must be changed at once.
- Lockout: after MAX_FAILURES consecutive wrong PINs the admin locks for 30 s; while the streak
  lasts (no correct PIN in between) every further wrong PIN locks again for twice as long,
  capped at 1 h. A correct PIN resets both counters. failures/lockouts/locked_until are
  persisted before the answer is given, so restarting the agent (or pulling the plug) does not
  reset them.
- The lockout uses the wall clock (it must survive a reboot, a monotonic clock does not). A
  clock that jumps backwards (a Pi without RTC before NTP) cannot lengthen a lockout beyond the
  period that was imposed.
- A damaged file fails closed: every attempt is refused with a sentence naming the file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batm_common.atomic import atomic_write

FILE_NAME = "admin-pin.json"
FACTORY_PIN = "000000"
MAX_FAILURES = 5
FIRST_LOCKOUT = 30.0
MAX_LOCKOUT = 3600.0
MIN_LENGTH, MAX_LENGTH = 6, 12
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # ~50 ms on x86, ~0.2 s on a Pi 4; 16 MiB
_DKLEN = 32


class PinError(ValueError):
    """A PIN request that cannot be honoured; str() is a sentence for the technician."""


class PinFileDamaged(PinError):
    """admin-pin.json exists but cannot be used."""


def lockout_period(lockouts: int) -> float:
    """How long the n-th lockout of a streak lasts (1 → 30 s, 2 → 60 s, … ≤ 1 h)."""
    return min(MAX_LOCKOUT, FIRST_LOCKOUT * 2 ** max(0, lockouts - 1))


def check_new_pin(pin: object) -> str:
    """The new PIN if acceptable, else PinError saying why."""
    if not isinstance(pin, str):
        raise PinError("the new PIN must be text")
    if not pin.isascii() or not pin.isdigit():
        raise PinError("the new PIN may contain digits only")
    if not MIN_LENGTH <= len(pin) <= MAX_LENGTH:
        raise PinError(f"the new PIN must have {MIN_LENGTH} to {MAX_LENGTH} digits")
    if pin == FACTORY_PIN:
        raise PinError("the new PIN must not be the factory PIN")
    if len(set(pin)) == 1:
        raise PinError("the new PIN must not repeat one digit")
    return pin


@dataclass(frozen=True)
class Attempt:
    ok: bool
    must_change: bool = False
    locked_for: float = 0.0  # seconds until a PIN is accepted again (0: not locked)
    tries_left: int = 0  # wrong PINs left before the next lockout


class PinStore:
    def __init__(self, state_dir: Path | str, *, clock: Callable[[], float] = time.time,
                 scrypt_params: dict | None = None) -> None:
        self.path = Path(state_dir) / FILE_NAME
        self.clock = clock
        self.params = dict(scrypt_params or SCRYPT)

    # -- file ----------------------------------------------------------------------------

    def _hash(self, pin: str, salt: bytes, params: dict) -> bytes:
        n, r, p = params["n"], params["r"], params["p"]
        return hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, dklen=_DKLEN,
                              maxmem=256 * r * n + 2**20)

    def _new_record(self, pin: str, must_change: bool) -> dict:
        salt = os.urandom(16)
        return {"format": 1, "kdf": "scrypt", **self.params, "salt": salt.hex(),
                "hash": self._hash(pin, salt, self.params).hex(), "must_change": must_change,
                "failures": 0, "lockouts": 0, "locked_until": 0.0}

    def load(self) -> dict:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self._new_record(FACTORY_PIN, must_change=True)
        except OSError as exc:
            raise PinFileDamaged(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            record = json.loads(raw)
            ok = (isinstance(record, dict) and record.get("kdf") == "scrypt"
                  and all(isinstance(record.get(k), int) and not isinstance(record.get(k), bool)
                          for k in ("n", "r", "p", "failures", "lockouts"))
                  and isinstance(record.get("locked_until"), int | float)
                  and isinstance(record.get("must_change"), bool))
            bytes.fromhex(record["salt"])
            bytes.fromhex(record["hash"])
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise PinFileDamaged(f"the PIN file {self.path} is damaged; the advanced "
                                 "administration stays locked (delete the file as root to "
                                 "restore the factory PIN)")
        return record

    def _save(self, record: dict) -> None:
        atomic_write(self.path, json.dumps(record, indent=1).encode() + b"\n", mode=0o600)

    # -- operations ------------------------------------------------------------------------

    def locked_for(self, record: dict | None = None) -> float:
        record = record if record is not None else self.load()
        remaining = float(record["locked_until"]) - self.clock()
        if remaining <= 0:
            return 0.0
        # A clock set back must not turn a 30 s lockout into years.
        return min(remaining, lockout_period(record["lockouts"]))

    def must_change(self) -> bool:
        return bool(self.load()["must_change"])

    def _clamp(self, record: dict) -> None:
        """A clock set back (no RTC, then NTP) must not stretch a lockout: shorten it to its
        period from now, persisted, so that it ends one period later in real time."""
        period = lockout_period(record["lockouts"])
        if float(record["locked_until"]) - self.clock() > period:
            record["locked_until"] = self.clock() + period
            self._save(record)

    def verify(self, pin: object) -> Attempt:
        """Check a PIN, counting failures and locking out. Persisted before it returns."""
        record = self.load()
        self._clamp(record)
        locked = self.locked_for(record)
        if locked > 0:  # not even checked: a locked admin gives no oracle
            return Attempt(ok=False, locked_for=locked)
        candidate = pin if isinstance(pin, str) else ""
        salt = bytes.fromhex(record["salt"])
        right = hmac.compare_digest(self._hash(candidate, salt, record),
                                    bytes.fromhex(record["hash"]))
        if right:
            if record["failures"] or record["lockouts"] or not self.path.exists():
                record.update(failures=0, lockouts=0, locked_until=0.0)
                self._save(record)
            return Attempt(ok=True, must_change=record["must_change"])
        record["failures"] += 1
        # The first lockout takes MAX_FAILURES wrong PINs; later ones in the streak take one.
        threshold = MAX_FAILURES if record["lockouts"] == 0 else 1
        if record["failures"] >= threshold:
            record["lockouts"] += 1
            record["failures"] = 0
            record["locked_until"] = self.clock() + lockout_period(record["lockouts"])
        self._save(record)
        locked = self.locked_for(record)
        tries = 0 if locked else (threshold - record["failures"])
        return Attempt(ok=False, locked_for=locked, tries_left=tries)

    def change(self, new: object, old: object = None, *, old_required: bool = True) -> None:
        """Set a new PIN. With old_required the current PIN must be given (a wrong one counts
        as a failed attempt). Raises PinError."""
        new_pin = check_new_pin(new)
        if old_required:
            attempt = self.verify(old)
            if not attempt.ok:
                if attempt.locked_for:
                    raise PinError(f"locked for {attempt.locked_for:.0f} s after too many "
                                   "wrong PINs")
                raise PinError("the current PIN is wrong")
        else:
            self.load()  # a damaged file is not silently replaced by a session holder
        self._save(self._new_record(new_pin, must_change=False))
