"""The console's users: made on the server's command line (there is no default account), each
with a role, locations, an argon2id password and, for whoever may act, a TOTP secret.

Disabling a user ends their sessions and API tokens at once; so does a new password for the
sessions (a stolen session should not outlive the password change it prompted).
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from batm_common.clock import utcnow
from server.console import passwords, totp
from server.console.audit import CLI_ACTOR, add_entry
from server.console.permissions import NEEDS_TOTP, Action, Principal, Role
from server.db.console import ApiToken, ConsoleSession, ConsoleUser
from server.errors import ServiceError, bad_request
from server.pairing.views import iso

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def unknown_user(name: str) -> ServiceError:
    return ServiceError(404, "unknown_user", f"there is no console user named {name!r}")


def principal_of(user: ConsoleUser) -> Principal:
    locations = None if user.all_locations else frozenset(json.loads(user.locations))
    return Principal(user.name, Role(user.role), locations)


def user_view(user: ConsoleUser) -> dict:
    return {
        "name": user.name, "role": user.role,
        "locations": None if user.all_locations else json.loads(user.locations),
        "all_locations": user.all_locations, "totp": user.totp_secret is not None,
        "disabled": user.disabled, "created_at": iso(user.created_at),
    }


class Users:
    def __init__(self, sessions: sessionmaker,
                 clock: Callable[[], datetime.datetime] = utcnow):
        self._sessions = sessions
        self.clock = clock

    def _find(self, session: Session, name: str) -> ConsoleUser:
        user = session.get(ConsoleUser, name)
        if user is None:
            raise unknown_user(name)
        return user

    def add(self, name: str, role: str, locations: list[str] | None, password: str,
            actor: str = CLI_ACTOR) -> dict:
        """Make a user; `locations` None means every location. {"name", "totp_uri"}."""
        if not NAME_PATTERN.fullmatch(name):
            raise bad_request(f"the user name {name!r} may hold only letters, digits, '.', "
                              "'_', '@' and '-' (at most 64), starting with a letter or digit")
        try:
            role = Role(role)
        except ValueError:
            raise bad_request(f"the role must be admin, operator or viewer, not {role!r}") from None
        password_hash = passwords.hash_password(password)
        secret = totp.new_secret() if role in NEEDS_TOTP else None
        now = self.clock()
        with self._sessions() as session, session.begin():
            if session.get(ConsoleUser, name) is not None:
                raise ServiceError(409, "exists", f"the console user {name!r} already exists")
            session.add(ConsoleUser(
                name=name, role=role, all_locations=locations is None,
                locations=json.dumps(sorted(locations or [])), password_hash=password_hash,
                totp_secret=secret, disabled=False, created_at=now))
            add_entry(session, now, actor, Action.USER_ADD, detail=f"{name} ({role})")
        return {"name": name,
                "totp_uri": totp.provisioning_uri(name, secret) if secret else None}

    def list(self) -> list[dict]:
        with self._sessions() as session:
            return [user_view(u) for u in
                    session.scalars(select(ConsoleUser).order_by(ConsoleUser.name)).all()]

    def passwd(self, name: str, password: str, actor: str = CLI_ACTOR) -> None:
        password_hash = passwords.hash_password(password)
        now = self.clock()
        with self._sessions() as session, session.begin():
            self._find(session, name).password_hash = password_hash
            _end_sessions(session, name)
            add_entry(session, now, actor, Action.USER_PASSWD, detail=name)

    def disable(self, name: str, actor: str = CLI_ACTOR) -> None:
        now = self.clock()
        with self._sessions() as session, session.begin():
            self._find(session, name).disabled = True
            _end_sessions(session, name)
            session.execute(delete(ApiToken).where(ApiToken.user == name))
            add_entry(session, now, actor, Action.USER_DISABLE, detail=name)

    def set_locations(self, name: str, locations: list[str] | None,
                      actor: str = CLI_ACTOR) -> dict:
        now = self.clock()
        with self._sessions() as session, session.begin():
            user = self._find(session, name)
            user.all_locations = locations is None
            user.locations = json.dumps(sorted(locations or []))
            add_entry(session, now, actor, Action.USER_LOCATIONS,
                      detail=f"{name}: {'all' if locations is None else ','.join(locations)}")
            return user_view(user)

    def principal(self, name: str) -> Principal | None:
        """The enabled user `name` as permission checks see them; None if absent or disabled."""
        with self._sessions() as session:
            user = session.get(ConsoleUser, name)
            return None if user is None or user.disabled else principal_of(user)

    def check_password(self, name: str, password: str) -> bool:
        """True for an enabled user's right password; the same work for any wrong answer."""
        with self._sessions() as session:
            user = session.get(ConsoleUser, name)
            stored = user.password_hash if user is not None and not user.disabled else None
        return passwords.verify_password(stored, password)

    def needs_totp(self, name: str) -> bool:
        with self._sessions() as session:
            user = session.get(ConsoleUser, name)
            return user is not None and user.totp_secret is not None

    def check_totp(self, name: str, code: str) -> bool:
        """True once per valid code of the user's authenticator (the step is then used up)."""
        now = self.clock()
        with self._sessions() as session, session.begin():
            user = session.get(ConsoleUser, name)
            if user is None or user.totp_secret is None:
                return False
            step = totp.accepted_step(user.totp_secret, code, now, user.totp_last_step)
            if step is None:
                return False
            user.totp_last_step = step
            return True


def _end_sessions(session: Session, name: str) -> None:
    session.execute(update(ConsoleSession).where(ConsoleSession.user == name)
                    .values(revoked=True))
