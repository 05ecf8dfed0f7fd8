"""Login rate limiting: failures counted per account and per source address, with lockouts that
grow with each failure past the first few (30 s, 1 min, 2 min, … up to an hour).

Counted in the database, so a restart does not forgive a guesser and several console processes
share the count. A success clears the account's count, never the address's: one valid account
must not let an address go on guessing others. A quiet day clears both.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable

from sqlalchemy import delete
from sqlalchemy.orm import sessionmaker

from batm_common.clock import utcnow
from server.db.console import LoginFailures
from server.errors import ServiceError

FREE_FAILURES = 5  # typos happen
FIRST_LOCKOUT = datetime.timedelta(seconds=30)
MAX_LOCKOUT = datetime.timedelta(hours=1)
FORGET_AFTER = datetime.timedelta(days=1)


def account_key(name: str) -> str:
    return f"user:{name[:100]}"


def address_key(address: str | None) -> str:
    return f"addr:{address or 'unknown'}"


def lockout_for(failures: int) -> datetime.timedelta | None:
    """How long the `failures`-th failure locks the key out (None: not yet)."""
    if failures < FREE_FAILURES:
        return None
    doublings = min(failures - FREE_FAILURES, 16)  # past the cap anyway; no overflow
    return min(FIRST_LOCKOUT * 2 ** doublings, MAX_LOCKOUT)


def locked_out(seconds: int) -> ServiceError:
    return ServiceError(429, "locked_out",
                        f"too many failed attempts; try again in {seconds} seconds")


class Lockouts:
    def __init__(self, sessions: sessionmaker,
                 clock: Callable[[], datetime.datetime] = utcnow):
        self._sessions = sessions
        self._clock = clock

    def check(self, keys: Iterable[str]) -> None:
        """429 with the seconds to wait when any of `keys` is locked out now."""
        now = self._clock()
        with self._sessions() as session:
            waits = [row.locked_until - now for key in keys
                     if (row := session.get(LoginFailures, key)) is not None
                     and row.locked_until is not None and row.locked_until > now]
        if waits:
            raise locked_out(max(1, int(max(waits).total_seconds() + 0.999)))

    def fail(self, keys: Iterable[str]) -> None:
        now = self._clock()
        with self._sessions() as session, session.begin():
            for key in keys:
                row = session.get(LoginFailures, key)
                if row is None:
                    row = LoginFailures(key=key, failures=0)
                    session.add(row)
                elif row.last_failure is not None and now - row.last_failure > FORGET_AFTER:
                    row.failures = 0
                row.failures += 1
                row.last_failure = now
                lockout = lockout_for(row.failures)
                row.locked_until = now + lockout if lockout else None

    def succeed(self, key: str) -> None:
        with self._sessions() as session, session.begin():
            session.execute(delete(LoginFailures).where(LoginFailures.key == key))
