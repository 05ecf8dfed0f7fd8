"""The seed's status-monitoring page as data: each terminal's last status, its history, events.

A row is red on a sync error and yellow when the terminal runs a version below the operator's
minimum version to pair (`batm-server firmware policy`): the same policy that makes the gate
upgrade it, so the monitor and the gate never disagree about who needs an update.
"""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from server.db.firmware import min_pair_version
from server.db.master import StatusHistory, TerminalEvent, TerminalStatus
from server.db.terminals import Terminal
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
                               min_pair_version(session))
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
            minimum = min_pair_version(session)
            terminals = session.scalars(select(Terminal).order_by(Terminal.serial)).all()
            return [status_view(t, session.get(TerminalStatus, t.serial), minimum)
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
