"""The console's pages for reading: the status monitor (the terminal list: columns, red/yellow
rows, the seed's filters in the URL, paging, sorting, live rows, CSV and Excel), pending pairing
requests, a terminal's page, the audit log; and creating terminals, one or a CSV of many. The
row actions are in page_actions.py, the monitor's remote tools in remote_pages.py."""

from __future__ import annotations

import asyncio
import csv
import io
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from server.console.actions import Actor
from server.console.monitor import STATES, ListQuery
from server.console.permissions import Action
from server.console.service import ConsoleService
from server.errors import ServiceError
from server.http.console.api import audit_filters, list_query
from server.http.console.bearer import source_address
from server.http.console.exports import csv_response, xlsx_response
from server.http.console.web import checked_form, digest, page_session, render, text_field

COLUMNS = [("serial", "Serial"), ("location", "Location"), ("state", "State"),
           ("online", "Online"), ("version", "Software version"),
           ("last_update", "Last update"), ("last_sync", "Last sync"),
           ("last_sync_error", "Last sync error"), ("vpn_handshake_age", "VPN handshake")]
MAX_CSV_ROWS = 5000


def _params(query: ListQuery, **changes) -> str:
    return urlencode(query.params(**changes))


def _list_context(console: ConsoleService, request: Request, session,
                  whole_page: bool = True) -> dict:
    """The monitor's page (filters' locations, the commands panel) or, not `whole_page`, only
    what its rows need: the live refresh runs this twice a second."""
    query = list_query(request)
    listing = console.fleet.terminals(session.principal, query)
    within = query.updated_within or ""
    return {
        "listing": listing, "query": query, "columns": COLUMNS, "states": STATES,
        "digest": digest(listing),
        "within_number": within[:-1], "within_unit": within[-1:] or "d",
        "pages": max(1, -(-listing["total"] // query.per_page)),
        "query_string": _params(query),
        "sort_link": lambda key: _params(query, sort=key, page=1, order="desc" if (
            query.sort == key and not query.descending) else "asc"),
        "page_link": lambda page: _params(query, page=page),
        "locations": console.fleet.locations(session.principal),
        "commands": console.remote.recent(session.principal) if whole_page else [],
        "session": session,
    }


def csv_rows(data: bytes) -> list[tuple[int, list[str]]]:
    """(line number, cells) of a CSV upload; a header line naming `serial` is skipped."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ServiceError(422, "bad_csv", "the CSV file is not UTF-8 text") from None
    rows = [(n, [c.strip() for c in row]) for n, row in
            enumerate(csv.reader(io.StringIO(text)), start=1) if any(c.strip() for c in row)]
    if rows and rows[0][1] and rows[0][1][0].lower() == "serial":
        rows = rows[1:]
    if not rows:
        raise ServiceError(422, "bad_csv", "the CSV file has no terminals")
    if len(rows) > MAX_CSV_ROWS:
        raise ServiceError(422, "bad_csv", f"the CSV file has more than {MAX_CSV_ROWS} rows")
    return rows


def pages_router(console: ConsoleService) -> APIRouter:
    router = APIRouter()

    @router.get("/")
    async def home() -> Response:
        return RedirectResponse("/terminals", status_code=303)

    @router.get("/terminals")
    async def terminals(request: Request) -> Response:
        session = page_session(console, request)
        return render("terminals.html", request, **await asyncio.to_thread(
            _list_context, console, request, session))  # off the loop, as the API's list

    @router.get("/terminals.csv")
    async def export_terminals(request: Request) -> Response:
        """The list as CSV, with the page's filters and order, within the user's locations."""
        session = page_session(console, request)
        return csv_response(console.fleet.export(session.principal, list_query(request)))

    @router.get("/terminals.xlsx")
    async def excel_terminals(request: Request) -> Response:
        """The monitor's view as an Excel workbook: the same filters, order and colours."""
        session = page_session(console, request)
        return await xlsx_response(console.fleet.export(session.principal, list_query(request)))

    @router.get("/terminals/rows")
    async def terminal_rows(request: Request) -> Response:
        """The list's table alone: what the page's self-refresh and live search swap in;
        204 (htmx keeps the table) when the rows are those the page shows (`digest`)."""
        session = page_session(console, request)
        context = await asyncio.to_thread(_list_context, console, request, session, False)
        if request.query_params.get("digest") == context["digest"]:
            return Response(status_code=204)
        return render("_terminal_rows.html", request, **context)

    @router.get("/pairing-requests")
    async def pairing_requests(request: Request) -> Response:
        session = page_session(console, request)
        return render("pairing.html", request, session=session,
                      requests=console.fleet.pairing_requests(session.principal))

    @router.get("/terminals/new")
    async def new_terminal(request: Request) -> Response:
        session = page_session(console, request)
        return render("new_terminal.html", request, session=session,
                      locations=console.fleet.locations(session.principal))

    @router.post("/terminals/new")
    async def create_terminal(request: Request) -> Response:
        session, form = await checked_form(console, request)
        actor = Actor(session.principal, source_address(request))
        serial = text_field(form, "serial", 100)
        made = console.actions.create(actor, serial, text_field(form, "scenario", 10),
                                      (form.get("location") or None))
        return RedirectResponse(f"/terminals/{made['serial']}", status_code=303)

    @router.post("/terminals/import")
    async def import_terminals(request: Request) -> Response:
        session, form = await checked_form(console, request)
        actor = Actor(session.principal, source_address(request))
        upload = form.get("csv")
        if upload is None or isinstance(upload, str):
            raise ServiceError(400, "bad_request", "csv: choose a CSV file to upload")
        results = []
        for line, cells in csv_rows(await upload.read()):
            serial, scenario, location = [*cells, "", "", ""][:3]
            try:
                console.actions.create(actor, serial, scenario.upper(), location or None)
                results.append({"line": line, "serial": serial, "ok": True, "result": "created"})
            except ServiceError as exc:
                results.append({"line": line, "serial": serial, "ok": False,
                                "result": exc.message})
        made = sum(r["ok"] for r in results)
        return render("new_terminal.html", request, session=session, results=results,
                      locations=console.fleet.locations(session.principal),
                      message=f"{made} of {len(results)} terminals created",
                      message_kind="ok" if made == len(results) else "error")

    @router.get("/terminals/{serial}")
    async def terminal(serial: str, request: Request) -> Response:
        session = page_session(console, request)
        return render("terminal.html", request, session=session,
                      t=console.fleet.terminal(session.principal, serial))

    @router.get("/audit")
    async def audit(request: Request) -> Response:
        session = page_session(console, request)
        filters = audit_filters(request)
        return render("audit.html", request, session=session, filters=filters,
                      all_actions=[a.value for a in Action],
                      entries=console.audit.entries(session.principal, **filters))

    return router
