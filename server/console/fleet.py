"""The fleet as one user sees it: the status monitor's list (monitor.py: paged, sorted, filtered
in SQL, so it stays fast at tens of thousands) and its exports, the pending pairing requests,
and one terminal's page.

Everything is filtered by the user's locations in the query itself; a terminal outside them is
answered exactly like one that does not exist.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from batm_common.clock import utcnow
from server.console.monitor import ListQuery, monitor_query, row_view, scoped
from server.console.permissions import Principal, Role
from server.db.console import AuditEntry
from server.db.master import Command, TerminalEvent, TerminalStatus
from server.db.terminals import PairingRequest, Terminal
from server.db.update_policy import update_policy
from server.db.vpn import VpnConfigRow
from server.errors import unknown_terminal
from server.master.views import command_view, status_view
from server.pairing.registry import find_terminal
from server.pairing.states import OPEN_REQUEST_STATES
from server.pairing.views import iso, request_view, terminal_view

EVERYWHERE = Principal("cli", Role.ADMIN, None)  # the host's operator: every location
RECENT = 20  # events and command results on a terminal's page
EXPORT_BATCH = 500  # rows fetched at a time by an export: memory stays flat at any fleet size


def visible_terminal(session: Session, principal: Principal, serial: str) -> Terminal:
    """The terminal, or 404 as for an unknown serial when it is outside the user's locations."""
    terminal = find_terminal(session, serial)
    if not principal.sees(terminal.location):
        raise unknown_terminal(serial)
    return terminal


class Fleet:
    def __init__(self, sessions: sessionmaker,
                 clock: Callable[[], datetime.datetime] = utcnow):
        self._sessions = sessions
        self._clock = clock

    def terminals(self, principal: Principal, query: ListQuery) -> dict:
        """{"terminals": [...], "total": N, "page", "per_page"}: one page of the monitor."""
        with self._sessions() as session:
            rows, count = monitor_query(principal, query, update_policy(session), self._clock())
            total = session.scalar(count)
            page = [row_view(r) for r in session.execute(
                rows.offset((query.page - 1) * query.per_page).limit(query.per_page)
            ).mappings()]
        return {"terminals": page, "total": total, "page": query.page,
                "per_page": query.per_page}

    def export(self, principal: Principal, query: ListQuery) -> Iterator[dict]:
        """Every terminal the monitor would show with these filters and this order (no
        paging), fetched in batches: the exports, within the user's locations alike."""
        with self._sessions() as session:
            rows, _count = monitor_query(principal, query, update_policy(session),
                                         self._clock())
            result = session.execute(rows.execution_options(yield_per=EXPORT_BATCH))
            for row in result.mappings():
                yield row_view(row)

    def listing(self, query: ListQuery) -> list[dict]:
        """`batm-server terminal list`: every terminal the filters let through, in order, each
        its registration (terminal_view) and its monitor row (status columns, highlight)."""
        rows = list(self.export(EVERYWHERE, query))
        with self._sessions() as session:
            views = {t.serial: terminal_view(t) for t in session.scalars(select(Terminal))}
        return [{**views[r["serial"]], **r} for r in rows if r["serial"] in views]

    def locations(self, principal: Principal) -> list[str]:
        """The locations the user may filter by: theirs, or every one in use."""
        if principal.locations is not None:
            return sorted(principal.locations)
        with self._sessions() as session:
            return list(session.scalars(select(Terminal.location).distinct()
                                        .where(Terminal.location.is_not(None))
                                        .order_by(Terminal.location)).all())

    def pairing_requests(self, principal: Principal) -> list[dict]:
        """Open requests of the user's terminals, oldest first, with their location and age.

        Without the code itself: the operator must read it on the kiosk and type it, which is
        what proves nobody sits between the terminal and the server (a code shown here could
        be copied without looking). `code_ready` says whether the kiosk shows one yet."""
        now = self._clock()
        query = scoped(select(PairingRequest, Terminal.location, Terminal.scenario)
                       .join(Terminal, Terminal.serial == PairingRequest.serial)
                       .where(PairingRequest.state.in_(OPEN_REQUEST_STATES))
                       .order_by(PairingRequest.created_at, PairingRequest.serial), principal)
        with self._sessions() as session:
            return [{**{k: v for k, v in request_view(r).items() if k != "code"},
                     "code_ready": r.code is not None, "location": location,
                     "scenario": scenario,
                     "age_seconds": int((now - r.created_at).total_seconds())}
                    for r, location, scenario in session.execute(query)]

    def terminal(self, principal: Principal, serial: str) -> dict:
        """A terminal's page: state, status, pairing history, VPN, events, command results."""
        with self._sessions() as session:
            terminal = visible_terminal(session, principal, serial)
            status = status_view(terminal, session.get(TerminalStatus, serial),
                                 update_policy(session))
            vpn = session.get(VpnConfigRow, serial)
            history = session.scalars(
                select(AuditEntry).where(AuditEntry.serial == serial)
                .where(AuditEntry.action.in_(("create", "approve", "unpair", "generate_vpn")))
                .order_by(AuditEntry.id.desc()).limit(RECENT)).all()
            events = session.scalars(
                select(TerminalEvent).where(TerminalEvent.serial == serial)
                .order_by(TerminalEvent.received_at.desc()).limit(RECENT)).all()
            commands = session.scalars(
                select(Command).where(Command.serial == serial)
                .order_by(Command.issued_at.desc()).limit(RECENT)).all()
            return {
                **terminal_view(terminal), "status": status,
                "vpn": {"tunnel_address": vpn.tunnel_address, "public_key": vpn.public_key,
                        "created_at": iso(vpn.created_at)} if vpn else None,
                "pairing_history": [{"at": iso(e.at), "action": e.action, "actor": e.actor,
                                     "result": e.result} for e in history],
                "events": [{"type": e.type, "at": e.at, "received_at": iso(e.received_at)}
                           for e in events],
                "commands": [command_view(c) for c in commands],
            }
