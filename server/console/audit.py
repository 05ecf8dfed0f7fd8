"""The audit log: who did what, when, from where, to which terminal, and how it ended.

Every state-changing action of the console is recorded, refusals included (a wrong pairing code,
a viewer trying to approve, a failed login), and so is what the CLI does to users. The table is
append-only (db/console.py). A user reads the entries of their locations, and their own.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from batm_common.clock import utcnow
from server.console.permissions import Action, Principal
from server.db.console import AuditEntry
from server.pairing.views import iso

OK = "ok"
CLI_ACTOR = "cli"  # someone with a shell on the server (the file system decided)
MAX_ENTRIES = 1000


def audit_view(entry: AuditEntry) -> dict:
    return {
        "id": entry.id, "at": iso(entry.at), "actor": entry.actor, "source": entry.source,
        "action": entry.action, "serial": entry.serial, "location": entry.location,
        "result": entry.result, "detail": entry.detail,
    }


class AuditLog:
    def __init__(self, sessions: sessionmaker,
                 clock: Callable[[], datetime.datetime] = utcnow):
        self._sessions = sessions
        self._clock = clock

    def record(self, actor: str, action: Action | str, result: str = OK, *,
               source: str | None = None, serial: str | None = None,
               location: str | None = None, detail: str | None = None) -> None:
        with self._sessions() as session, session.begin():
            add_entry(session, self._clock(), actor, action, result, source=source,
                      serial=serial, location=location, detail=detail)

    def entries(self, principal: Principal, *, actor: str | None = None,
                action: str | None = None, serial: str | None = None,
                result: str | None = None, since: datetime.datetime | None = None,
                until: datetime.datetime | None = None, limit: int = 100) -> list[dict]:
        """Newest first, filtered; only what `principal` may see."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(
            max(1, min(limit, MAX_ENTRIES)))
        if principal.locations is not None:
            query = query.where(or_(AuditEntry.location.in_(principal.locations),
                                    AuditEntry.actor == principal.name))
        for column, value in ((AuditEntry.actor, actor), (AuditEntry.action, action),
                              (AuditEntry.serial, serial)):
            if value:
                query = query.where(column == value)
        if result == OK:
            query = query.where(AuditEntry.result == OK)
        elif result == "refused":
            query = query.where(AuditEntry.result != OK)
        elif result:
            query = query.where(AuditEntry.result == result)
        if since is not None:
            query = query.where(AuditEntry.at >= since)
        if until is not None:
            query = query.where(AuditEntry.at < until)
        with self._sessions() as session:
            return [audit_view(e) for e in session.scalars(query).all()]


def add_entry(session: Session, at: datetime.datetime, actor: str, action: Action | str,
              result: str = OK, *, source: str | None = None, serial: str | None = None,
              location: str | None = None, detail: str | None = None) -> None:
    """One entry, in the caller's transaction (so it commits with the change it records)."""
    session.add(AuditEntry(at=at, actor=actor, source=source, action=str(action),
                           serial=serial, location=location, result=result,
                           detail=(detail or None) and detail[:500]))
