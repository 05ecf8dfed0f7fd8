"""The status monitor (the seed's status-monitoring page): the terminal list with each terminal's
version, last update, last sync, last sync error, online flag and VPN handshake age, coloured
red (the last exchange with the server failed) or yellow (it needs an update), and the seed's
filters: location, "most recent update within N minutes/hours/days", "do not show successfully
synced", plus search, state and colour.

One SQL query does it all — filter, colour, sort, page — so that a page of 50,000 terminals
costs one indexed query and the filters compose; the export runs the same query unpaged and
streamed. The user's locations are part of that query: what they may not see is never read.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Select, case, desc, func, select
from sqlalchemy.sql.elements import ColumnElement

from batm_common.clock import iso_ms
from server.console.permissions import Principal
from server.db.firmware import FirmwareUpgrade
from server.db.master import TerminalStatus
from server.db.terminals import Terminal
from server.db.update_policy import UpdatePolicy
from server.errors import bad_request
from server.pairing.states import TerminalState
from server.pairing.views import iso

MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 50
MAX_QUERY = 100
HIGHLIGHTS = ("red", "yellow")
STATES = tuple(s.value for s in TerminalState)
WITHIN = re.compile(r"^\s*(\d{1,6})\s*([mhd])\s*$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}
MAX_WITHIN = datetime.timedelta(days=3660)

# What the terminal runs: its last status; else what it paired with; else, for a terminal the gate
# is upgrading before it could pair, the version it ran when offered the current step.
VERSION = func.coalesce(TerminalStatus.version, Terminal.version,
                        FirmwareUpgrade.offered_from, FirmwareUpgrade.origin_version)
# NULL (no error, or no status at all) is not a failure; written null-rejecting so that the
# database may start from terminal_status (a third of the fleet) when it filters on it.
SYNC_FAILED = TerminalStatus.last_sync_error != ""
SORTS: dict[str, ColumnElement] = {
    "serial": Terminal.serial, "location": Terminal.location, "scenario": Terminal.scenario,
    "state": Terminal.state, "online": TerminalStatus.online, "version": VERSION,
    "last_seen": Terminal.last_seen, "last_update": TerminalStatus.last_update,
    "last_sync": TerminalStatus.last_sync, "last_sync_error": TerminalStatus.last_sync_error,
    "vpn_handshake_age": TerminalStatus.vpn_handshake_age,
}


def parse_within(text: str) -> datetime.timedelta:
    """"30m", "6h", "2d" as a period; a sentence naming the form otherwise."""
    match = WITHIN.match(text) if isinstance(text, str) else None
    if not match:
        raise bad_request(f"updated_within: {text!r} is not a period like 30m, 6h or 2d "
                          "(a number of minutes, hours or days)")
    period = datetime.timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    if not datetime.timedelta(0) < period <= MAX_WITHIN:
        raise bad_request("updated_within: must be more than 0 and at most 3660 days")
    return period


@dataclass(frozen=True)
class ListQuery:
    """What the monitor shows: the list page's and GET /api/v1/terminals' parameters (and the
    page's URL, so a filtered view can be bookmarked)."""

    location: str | None = None
    q: str | None = None
    state: str | None = None
    updated_within: str | None = None  # "30m", "6h", "2d"
    hide_synced: bool = False  # the seed's "do not show successfully synced": errors only
    highlight: str | None = None  # "red" or "yellow"
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    sort: str = "serial"
    descending: bool = False

    def __post_init__(self) -> None:
        if self.sort not in SORTS and self.sort != "highlight":
            raise bad_request(f"sort: must be one of {', '.join(SORTS)}, highlight; "
                              f"not {self.sort!r}")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise bad_request(f"per_page: must be from 1 to {MAX_PER_PAGE}")
        if self.page < 1:
            raise bad_request("page: must be 1 or more")
        if self.q is not None and len(self.q) > MAX_QUERY:
            raise bad_request(f"q: longer than {MAX_QUERY} characters")
        if self.state is not None and self.state not in STATES:
            raise bad_request(f"state: must be one of {', '.join(STATES)}, not {self.state!r}")
        if self.highlight is not None and self.highlight not in HIGHLIGHTS:
            raise bad_request(f"highlight: must be red or yellow, not {self.highlight!r}")
        if self.updated_within is not None:
            parse_within(self.updated_within)

    def params(self, **changes) -> dict:
        """The query as URL parameters (defaults left out): the page's links and bookmarks."""
        values = {"q": self.q, "location": self.location, "state": self.state,
                  "updated_within": self.updated_within,
                  "hide_synced": "true" if self.hide_synced else None,
                  "highlight": self.highlight, "sort": self.sort,
                  "order": "desc" if self.descending else "asc", "per_page": self.per_page,
                  "page": self.page, **changes}
        return {k: v for k, v in values.items() if v not in (None, "")}


def highlight_sql(policy: UpdatePolicy) -> ColumnElement:
    """The seed's colours: red on a sync error (it wins), yellow when an update is needed."""
    return case((SYNC_FAILED, "red"), (policy.needs_update_sql(VERSION), "yellow"), else_=None)


def scoped(query: Select, principal: Principal) -> Select:
    """`query` (on terminals) limited to what `principal` may see."""
    if principal.locations is None:
        return query
    return query.where(Terminal.location.in_(sorted(principal.locations)))


def monitor_query(principal: Principal, query: ListQuery, policy: UpdatePolicy,
                  now: datetime.datetime) -> tuple[Select, Select]:
    """(every matching row in order, their count): the list's one query, not yet paged. The
    count joins the status and upgrade tables only when a filter reads them: an unfiltered
    count is then one index scan of terminals, not a three-table join of the whole fleet."""
    highlight = highlight_sql(policy)
    conditions: list[ColumnElement] = []
    status_filter = upgrade_filter = False
    if principal.locations is not None:
        conditions.append(Terminal.location.in_(sorted(principal.locations)))
    if query.location:
        conditions.append(Terminal.location == query.location)
    if query.state:
        conditions.append(Terminal.state == query.state)
    if query.q:
        pattern = "%" + query.q.replace("\\", "\\\\").replace("%", "\\%").replace(
            "_", "\\_") + "%"
        conditions.append(Terminal.serial.ilike(pattern, escape="\\")
                          | Terminal.location.ilike(pattern, escape="\\"))
    if query.updated_within:
        # The terminal's own ISO-8601 UTC stamps (iso_ms) compare as text, in any SQL engine.
        since = iso_ms(now - parse_within(query.updated_within))
        conditions.append(TerminalStatus.last_update >= since)
        status_filter = True
    if query.hide_synced:
        conditions.append(SYNC_FAILED)
        status_filter = True
    if query.highlight:
        conditions.append(highlight == query.highlight)
        status_filter = upgrade_filter = True

    def joined(selected: Select, status: bool, upgrade: bool) -> Select:
        selected = selected.select_from(Terminal)
        if status:
            selected = selected.outerjoin(TerminalStatus,
                                          TerminalStatus.serial == Terminal.serial)
        if upgrade:
            selected = selected.outerjoin(FirmwareUpgrade,
                                          FirmwareUpgrade.serial == Terminal.serial)
        return selected.where(*conditions)

    rows = joined(select(
        Terminal.serial, Terminal.location, Terminal.scenario, Terminal.state,
        Terminal.last_seen, TerminalStatus.online, VERSION.label("version"),
        TerminalStatus.last_update, TerminalStatus.last_sync, TerminalStatus.last_sync_error,
        TerminalStatus.vpn_handshake_age, highlight.label("highlight"),
    ), True, True)
    count = joined(select(func.count()), status_filter, upgrade_filter)
    order = highlight if query.sort == "highlight" else SORTS[query.sort]
    rows = rows.order_by(desc(order) if query.descending else order, Terminal.serial)
    return rows, count


def row_view(row: Mapping) -> dict:
    """One monitor row as the API, the page and the exports show it."""
    return {
        "serial": row["serial"], "location": row["location"], "scenario": row["scenario"],
        "state": row["state"], "online": bool(row["online"]), "version": row["version"],
        "last_seen": iso(row["last_seen"]), "last_update": row["last_update"],
        "last_sync": row["last_sync"], "last_sync_error": row["last_sync_error"] or None,
        "vpn_handshake_age": row["vpn_handshake_age"], "highlight": row["highlight"],
    }
