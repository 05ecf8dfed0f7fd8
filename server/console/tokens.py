"""API tokens: `batm-server token create USER` prints one once; the server keeps its digest.

A token acts as its user (their role and locations, read at each request), so a changed role or
location applies at once, and disabling the user ends the token.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
from collections.abc import Callable

from sqlalchemy.orm import sessionmaker

from batm_common.clock import utcnow
from server.console.audit import CLI_ACTOR, add_entry
from server.console.permissions import Action, Principal
from server.console.users import principal_of, unknown_user
from server.db.console import ApiToken, ConsoleUser
from server.errors import ServiceError

PREFIX = "batm_"  # recognisable in a leaked file or a secret scanner
MAX_TOKEN = 200
LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)  # not a write per request


def digest(secret: str) -> str:
    """Tokens and session cookies are random, so one SHA-256 is enough to store them."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Tokens:
    def __init__(self, sessions: sessionmaker,
                 clock: Callable[[], datetime.datetime] = utcnow):
        self._sessions = sessions
        self._clock = clock

    def create(self, name: str, actor: str = CLI_ACTOR) -> str:
        token = PREFIX + secrets.token_urlsafe(32)
        now = self._clock()
        with self._sessions() as session, session.begin():
            user = session.get(ConsoleUser, name)
            if user is None:
                raise unknown_user(name)
            if user.disabled:
                raise ServiceError(409, "disabled", f"the console user {name!r} is disabled; "
                                                    "a token for them would never work")
            session.add(ApiToken(digest=digest(token), user=name, created_at=now))
            add_entry(session, now, actor, Action.TOKEN_CREATE, detail=name)
        return token

    def principal(self, token: str) -> Principal | None:
        """The token's user, if the token exists and the user is enabled."""
        if not token.startswith(PREFIX) or len(token) > MAX_TOKEN:
            return None
        now = self._clock()
        with self._sessions() as session, session.begin():
            row = session.get(ApiToken, digest(token))
            if row is None:
                return None
            user = session.get(ConsoleUser, row.user)
            if user is None or user.disabled:
                return None
            if row.last_used is None or now - row.last_used > LAST_USED_RESOLUTION:
                row.last_used = now
            return principal_of(user)
