"""Browser sessions, kept on the server: the cookie holds only a random id (its digest is what
the table keeps), so a session can be revoked, ends after IDLE without a request and after
LIFETIME in any case, and ends with its user's new password or disabling.

Each session carries its CSRF token: every state-changing page request must send it back.
"""

from __future__ import annotations

import datetime
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import sessionmaker

from batm_common.clock import utcnow
from server.console.permissions import Principal
from server.console.tokens import digest
from server.console.users import principal_of
from server.db.console import ConsoleSession, ConsoleUser

IDLE = datetime.timedelta(minutes=30)
LIFETIME = datetime.timedelta(hours=12)
TOUCH_RESOLUTION = datetime.timedelta(seconds=30)  # not a write per request
MAX_COOKIE = 100


@dataclass(frozen=True)
class BrowserSession:
    principal: Principal
    csrf_token: str

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf_token.encode())


class BrowserSessions:
    def __init__(self, sessions: sessionmaker,
                 clock: Callable[[], datetime.datetime] = utcnow):
        self._sessions = sessions
        self._clock = clock

    def open(self, name: str, source: str | None) -> str:
        """A new session for user `name` (who just logged in); returns the cookie's value."""
        cookie = secrets.token_urlsafe(32)
        now = self._clock()
        with self._sessions() as session, session.begin():
            session.add(ConsoleSession(digest=digest(cookie), user=name,
                                       csrf_token=secrets.token_urlsafe(32), source=source,
                                       created_at=now, last_seen=now, revoked=False))
        return cookie

    def find(self, cookie: str | None) -> BrowserSession | None:
        """The live session of `cookie`; None when absent, revoked, expired or its user gone."""
        if not cookie or len(cookie) > MAX_COOKIE:
            return None
        now = self._clock()
        with self._sessions() as session, session.begin():
            row = session.get(ConsoleSession, digest(cookie))
            if row is None or row.revoked:
                return None
            if now - row.last_seen > IDLE or now - row.created_at > LIFETIME:
                row.revoked = True
                return None
            user = session.get(ConsoleUser, row.user)
            if user is None or user.disabled:
                return None
            if now - row.last_seen > TOUCH_RESOLUTION:
                row.last_seen = now
            return BrowserSession(principal_of(user), row.csrf_token)

    def close(self, cookie: str | None) -> None:
        """Revoke the session of `cookie` (logout)."""
        if not cookie or len(cookie) > MAX_COOKIE:
            return
        with self._sessions() as session, session.begin():
            row = session.get(ConsoleSession, digest(cookie))
            if row is not None:
                row.revoked = True
