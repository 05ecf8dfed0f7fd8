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
- Every save is mirrored to `admin-pin.json.bak`. A damaged file is quarantined
  (batm_common.quarantine: moved aside, reported to the server) and the mirror restored; when
  the mirror is unusable too, a "sealed" record takes its place and every attempt is refused
  with a sentence naming the file (failing closed: the factory PIN would open the admin to
  anyone at the kiosk). Deleting the file as root is the recovery.
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
from batm_common.quarantine import Replacement, quarantine

FILE_NAME = "admin-pin.json"
SEALED = "sealed"  # the record left in place of a damaged file with no usable mirror
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


class _Unusable(ValueError):
    """A PIN file's content is not a PIN record (internal: load() quarantines it)."""


def _sealed_message(path: Path, why: str) -> str:
    return (f"the PIN file {path} was damaged ({why}); the advanced administration stays "
            "locked until it is deleted as root, which restores the factory PIN")


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
        self.backup = self.path.with_name(FILE_NAME + ".bak")
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

    def _read(self, path: Path) -> dict | None:
        """The record stored in `path`; None when there is none; _Unusable when damaged."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:  # a permission problem is the installer's, not the file's
            raise PinFileDamaged(f"cannot read {path}: {exc.strerror}") from exc
        try:
            record = json.loads(raw)
            if isinstance(record, dict) and isinstance(record.get(SEALED), str):
                return record
            ok = (isinstance(record, dict) and record.get("kdf") == "scrypt"
                  and all(isinstance(record.get(k), int) and not isinstance(record.get(k), bool)
                          for k in ("n", "r", "p", "failures", "lockouts"))
                  and isinstance(record.get("locked_until"), int | float)
                  and isinstance(record.get("must_change"), bool))
            bytes.fromhex(record["salt"])
            bytes.fromhex(record["hash"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _Unusable(f"not a PIN record ({type(exc).__name__}: {exc})") from exc
        if not ok:
            raise _Unusable("not a PIN record (a field is missing or of the wrong type)")
        return record

    def load(self) -> dict:
        """The PIN record. A damaged file is quarantined and the mirror restored; with no usable
        mirror the admin is sealed (PinFileDamaged) rather than opened with the factory PIN."""
        try:
            record = self._read(self.path)
        except _Unusable as exc:
            return self._restore(str(exc))
        if record is None:
            # No file is the factory state, and deleting it (root) the documented recovery:
            # the mirror is not consulted, or that recovery would bring the old PIN back.
            return self._new_record(FACTORY_PIN, must_change=True)
        if SEALED in record:
            raise PinFileDamaged(_sealed_message(self.path, record[SEALED]))
        return record

    def _restore(self, why: str) -> dict:
        try:
            backup = self._read(self.backup)
        except _Unusable as exc:
            backup, why = None, f"{why}; its mirror {self.backup.name} is damaged too ({exc})"
            quarantine(self.backup, str(exc), Replacement.REFUSED)
        if backup is not None and SEALED not in backup:
            quarantine(self.path, why, Replacement.RESTORED)
            self._save(backup)
            return backup
        # Nothing safe replaces a PIN: the factory PIN would open the admin (and re-pointing a
        # paired terminal) to anyone at the kiosk. The terminal keeps serving customers.
        quarantine(self.path, why, Replacement.REFUSED)
        atomic_write(self.path, json.dumps({"format": 1, SEALED: why}).encode() + b"\n",
                     mode=0o600)
        raise PinFileDamaged(_sealed_message(self.path, why))

    def _save(self, record: dict) -> None:
        data = json.dumps(record, indent=1).encode() + b"\n"
        atomic_write(self.path, data, mode=0o600)
        atomic_write(self.backup, data, mode=0o600)  # the mirror _restore() falls back to

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
