"""The seed's status-monitoring page as data: each terminal's last status, its history, events.

A row is red on a sync error and yellow when the terminal needs an update
(db/update_policy.py: below the operator's minimum version to pair — the same policy that makes
the gate upgrade it — or the catalog holds a newer bundle it can install), as in the console.
"""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from server.db.master import StatusHistory, TerminalEvent, TerminalStatus
from server.db.terminals import Terminal
from server.db.update_policy import update_policy
from server.master.views import moment, status_view
from server.pairing.registry import find_terminal

HISTORY_LIMIT = 1000


class Monitoring:
    def __init__(self, sessions: sessionmaker):
        self._sessions = sessions

    def status(self, serial: str, history: int = 0) -> dict:
        with self._sessions() as session, session.begin():
            terminal = find_terminal(session, serial)
            view = status_view(terminal, session.get(TerminalStatus, serial),
                               update_policy(session))
            if history:
                rows = session.scalars(
                    select(StatusHistory).where(StatusHistory.serial == serial)
                    .order_by(StatusHistory.id.desc()).limit(min(history, HISTORY_LIMIT))
                ).all()
                view["history"] = [
                    {"received_at": moment(r.received_at), "status": json.loads(r.status)}
                    for r in rows
                ]
            return view

    def statuses(self) -> list[dict]:
        with self._sessions() as session, session.begin():
            policy = update_policy(session)
            terminals = session.scalars(select(Terminal).order_by(Terminal.serial)).all()
            return [status_view(t, session.get(TerminalStatus, t.serial), policy)
                    for t in terminals]

    def events(self, serial: str, limit: int = 100) -> dict:
        with self._sessions() as session, session.begin():
            find_terminal(session, serial)
            count = session.scalar(
                select(func.count()).select_from(TerminalEvent)
                .where(TerminalEvent.serial == serial)
            )
            rows = session.scalars(
                select(TerminalEvent).where(TerminalEvent.serial == serial)
                .order_by(TerminalEvent.received_at.desc(), TerminalEvent.event_id)
                .limit(limit)
            ).all() if limit else []
            return {"serial": serial, "count": count, "events": [
                {"id": e.event_id, "type": e.type, "at": e.at, "data": json.loads(e.data),
                 "received_at": moment(e.received_at)} for e in rows
            ]}
