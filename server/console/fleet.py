"""The fleet as one user sees it: the terminal list (paged, sorted, searched in SQL, so it stays
fast at tens of thousands), the pending pairing requests, and one terminal's page.

Everything is filtered by the user's locations in the query itself; a terminal outside them is
answered exactly like one that does not exist.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import Select, desc, func, select
from sqlalchemy.orm import Session, sessionmaker

from batm_common.clock import utcnow
from server.console.permissions import Principal
from server.db.console import AuditEntry
from server.db.firmware import min_pair_version
from server.db.master import Command, TerminalEvent, TerminalStatus
from server.db.terminals import PairingRequest, Terminal
from server.db.vpn import VpnConfigRow
from server.errors import bad_request, unknown_terminal
from server.master.views import command_view, status_view
from server.pairing.registry import find_terminal
from server.pairing.states import OPEN_REQUEST_STATES
from server.pairing.views import iso, request_view, terminal_view

MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 50
MAX_QUERY = 100
_VERSION = func.coalesce(TerminalStatus.version, Terminal.version)
SORTS = {
    "serial": Terminal.serial, "location": Terminal.location, "scenario": Terminal.scenario,
    "state": Terminal.state, "online": TerminalStatus.online, "version": _VERSION,
    "last_seen": Terminal.last_seen,
}
RECENT = 20  # events and command results on a terminal's page


@dataclass(frozen=True)
class ListQuery:
    """What the list shows: the terminal list page's and GET /api/v1/terminals' parameters."""

    location: str | None = None
    q: str | None = None
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    sort: str = "serial"
    descending: bool = False

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise bad_request(f"sort: must be one of {', '.join(SORTS)}, not {self.sort!r}")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise bad_request(f"per_page: must be from 1 to {MAX_PER_PAGE}")
        if self.page < 1:
            raise bad_request("page: must be 1 or more")
        if self.q is not None and len(self.q) > MAX_QUERY:
            raise bad_request(f"q: longer than {MAX_QUERY} characters")


def scoped(query: Select, principal: Principal) -> Select:
    """`query` (on terminals) limited to what `principal` may see."""
    if principal.locations is None:
        return query
    return query.where(Terminal.location.in_(sorted(principal.locations)))


def visible_terminal(session: Session, principal: Principal, serial: str) -> Terminal:
    """The terminal, or 404 as for an unknown serial when it is outside the user's locations."""
    terminal = find_terminal(session, serial)
    if not principal.sees(terminal.location):
        raise unknown_terminal(serial)
    return terminal


def list_row(terminal: Terminal, online: bool | None, version: int | None) -> dict:
    return {
        "serial": terminal.serial, "location": terminal.location,
        "scenario": terminal.scenario, "state": terminal.state, "online": bool(online),
        "version": version, "last_seen": iso(terminal.last_seen),
    }


class Fleet:
    def __init__(self, sessions: sessionmaker,
                 clock: Callable[[], datetime.datetime] = utcnow):
        self._sessions = sessions
        self._clock = clock

    @staticmethod
    def _filtered(principal: Principal, query: ListQuery) -> Select:
        base = scoped(select(Terminal), principal)
        if query.location:
            base = base.where(Terminal.location == query.location)
        if query.q:
            pattern = "%" + query.q.replace("\\", "\\\\").replace("%", "\\%").replace(
                "_", "\\_") + "%"
            base = base.where(Terminal.serial.ilike(pattern, escape="\\")
                              | Terminal.location.ilike(pattern, escape="\\"))
        return base

    @staticmethod
    def _ordered(base: Select, query: ListQuery) -> Select:
        order = SORTS[query.sort]
        return (base.outerjoin(TerminalStatus, TerminalStatus.serial == Terminal.serial)
                .add_columns(TerminalStatus.online, _VERSION)
                .order_by(desc(order) if query.descending else order, Terminal.serial))

    def terminals(self, principal: Principal, query: ListQuery) -> dict:
        """{"terminals": [...], "total": N, "page", "per_page"}: one page of the list."""
        base = self._filtered(principal, query)
        rows = self._ordered(base, query).offset(
            (query.page - 1) * query.per_page).limit(query.per_page)
        with self._sessions() as session:
            total = session.scalar(base.with_only_columns(func.count()).order_by(None))
            page = [list_row(t, online, version) for t, online, version in session.execute(rows)]
        return {"terminals": page, "total": total, "page": query.page,
                "per_page": query.per_page}

    def export(self, principal: Principal, query: ListQuery) -> Iterator[dict]:
        """Every terminal the list would show with these filters and this order (no paging):
        the CSV export, which respects the filters and the user's locations alike."""
        base = self._filtered(principal, query)
        with self._sessions() as session:
            for t, online, version in session.execute(self._ordered(base, query)):
                yield list_row(t, online, version)

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
                                 min_pair_version(session))
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
