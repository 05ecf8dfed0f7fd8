"""The console's HTTPS API for automation, under /api/v1/ (docs/protocol.md §10): the console's
own permissions apply (locations, roles), and every change lands in the audit log.

Errors are {"error": code, "message": sentence}: 400 a malformed request, 401 no or a bad
token, 403 the role does not allow it, 404 no such terminal (or not in your locations), 409 the
state forbids it (wrong code, not paired), 429 locked out, 503 a part of the server not running.
"""

from __future__ import annotations

import asyncio
import datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse

from batm_common.remote_commands import RemoteCommand
from server.console.monitor import DEFAULT_PER_PAGE, MAX_PER_PAGE, ListQuery
from server.console.service import ConsoleService
from server.errors import bad_request
from server.http import fields
from server.http.console.bearer import bearer_actor
from server.http.console.exports import csv_response, xlsx_response

TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


def flag(raw: str | None, name: str) -> bool:
    value = (raw or "").strip().lower()
    if value not in TRUE + FALSE:
        raise bad_request(f"{name}: must be true or false, not {raw!r}")
    return value in TRUE


def list_query(request: Request) -> ListQuery:
    """The monitor's query parameters (the page, its URL and the API read the same ones)."""
    params = request.query_params
    order = params.get("order") or "asc"
    if order not in ("asc", "desc"):
        raise bad_request(f"order: must be asc or desc, not {order!r}")
    within = params.get("updated_within") or None
    if within is None and (params.get("within") or "").strip():
        # The page's form: a number and a unit (minutes, hours, days), as the seed's.
        within = params["within"].strip() + (params.get("within_unit") or "d")
    return ListQuery(
        location=params.get("location") or None, q=params.get("q") or None,
        state=params.get("state") or None, updated_within=within,
        hide_synced=flag(params.get("hide_synced"), "hide_synced"),
        highlight=params.get("highlight") or None,
        page=max(1, fields.int_query(params.get("page"), "page", 1, 10**9)),
        per_page=fields.int_query(params.get("per_page"), "per_page", DEFAULT_PER_PAGE,
                                  MAX_PER_PAGE),
        sort=params.get("sort") or "serial", descending=order == "desc",
    )


def _moment(raw: str | None, name: str) -> datetime.datetime | None:
    if not raw:
        return None
    try:
        moment = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name}: {raw!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def audit_filters(request: Request) -> dict:
    """The audit log's filters (the page and the API read the same ones)."""
    params = request.query_params
    return {"actor": params.get("actor") or None, "action": params.get("action") or None,
            "serial": params.get("serial") or None, "result": params.get("result") or None,
            "since": _moment(params.get("since"), "since"),
            "until": _moment(params.get("until"), "until"),
            "limit": fields.int_query(params.get("limit"), "limit", 100, 1000)}


def api_router(console: ConsoleService) -> APIRouter:
    api = APIRouter(prefix="/api/v1")

    @api.get("/terminals")
    async def list_terminals(request: Request) -> JSONResponse:
        actor = bearer_actor(console, request)
        # In a worker thread: at fleet size the query takes tens of milliseconds, and the
        # event loop also serves the terminals' gate.
        return JSONResponse(await asyncio.to_thread(console.fleet.terminals, actor.principal,
                                                    list_query(request)))

    @api.get("/terminals.csv")
    async def export_terminals(request: Request) -> StreamingResponse:
        actor = bearer_actor(console, request)
        return csv_response(console.fleet.export(actor.principal, list_query(request)))

    @api.get("/terminals.xlsx")
    async def excel_terminals(request: Request) -> FileResponse:
        actor = bearer_actor(console, request)
        return await xlsx_response(console.fleet.export(actor.principal, list_query(request)))

    @api.get("/terminals/{serial}")
    async def get_terminal(serial: str, request: Request) -> JSONResponse:
        actor = bearer_actor(console, request)
        return JSONResponse(console.fleet.terminal(actor.principal, serial))

    @api.get("/pairing-requests")
    async def pairing_requests(request: Request) -> JSONResponse:
        actor = bearer_actor(console, request)
        return JSONResponse({"pairing_requests": console.fleet.pairing_requests(
            actor.principal)})

    @api.post("/terminals")
    async def create_terminal(request: Request) -> JSONResponse:
        actor = bearer_actor(console, request)
        body = fields.json_object(await request.body())
        serial = fields.text(body, "serial", max_len=100)
        scenario = fields.text(body, "scenario", max_len=10)
        location = fields.text(body, "location", optional=True)
        assert serial is not None and scenario is not None
        return JSONResponse(console.actions.create(actor, serial, scenario, location),
                            status_code=201)

    @api.post("/terminals/{serial}/approve")
    async def approve(serial: str, request: Request) -> JSONResponse:
        actor = bearer_actor(console, request)
        body = fields.json_object(await request.body())
        code = fields.text(body, "code", max_len=100)
        assert code is not None
        return JSONResponse(console.actions.approve(actor, serial, code))

    @api.post("/terminals/{serial}/unpair")
    async def unpair(serial: str, request: Request) -> JSONResponse:
        return JSONResponse(console.actions.unpair(bearer_actor(console, request), serial))

    @api.post("/terminals/{serial}/vpn")
    async def generate_vpn(serial: str, request: Request) -> JSONResponse:
        return JSONResponse(console.actions.generate_vpn(bearer_actor(console, request),
                                                         serial))

    @api.delete("/terminals/{serial}")
    async def delete_terminal(serial: str, request: Request) -> Response:
        console.actions.delete(bearer_actor(console, request), serial)
        return Response(status_code=204)

    @api.get("/audit")
    async def audit(request: Request) -> JSONResponse:
        actor = bearer_actor(console, request)
        return JSONResponse({"entries": console.audit.entries(actor.principal,
                                                              **audit_filters(request))})

    @api.post("/terminals/{serial}/commands")
    async def issue_command(serial: str, request: Request) -> JSONResponse:
        """{"command": "retrieve_logs"|"reset_db"|"reboot", "args": {...}}: as the CLI's."""
        actor = bearer_actor(console, request)
        body = fields.json_object(await request.body())
        name = body.get("command")
        if name not in (RemoteCommand.RETRIEVE_LOGS, RemoteCommand.RESET_DB,
                        RemoteCommand.REBOOT):
            raise bad_request(f"command: must be retrieve_logs, reset_db or reboot, not "
                              f"{name!r}")
        args = body.get("args")
        if args is not None and not isinstance(args, dict):
            raise bad_request("args: must be a JSON object")
        view = await asyncio.to_thread(console.remote.issue, actor, serial,
                                       RemoteCommand(name), args)
        return JSONResponse(view, status_code=201)

    @api.get("/terminals/{serial}/commands")
    async def terminal_commands(serial: str, request: Request) -> JSONResponse:
        actor = bearer_actor(console, request)
        console.fleet.terminal(actor.principal, serial)  # 404 outside one's locations
        return JSONResponse({"commands": console.remote.recent(actor.principal, serial)})

    @api.get("/archives/{archive_id}")
    async def download_archive(archive_id: str, request: Request) -> FileResponse:
        actor = bearer_actor(console, request)
        view, path = console.remote.archive_file(actor.principal, archive_id)
        return FileResponse(path, media_type="application/gzip", filename=view["filename"])

    @api.get("/firmware")
    async def firmware(request: Request) -> JSONResponse:
        actor = bearer_actor(console, request)
        return JSONResponse(console.firmware.overview(actor.principal))

    @api.get("/terminals/{serial}/vpn")
    async def download_vpn(serial: str, request: Request) -> JSONResponse:
        return JSONResponse(console.actions.vpn_config(bearer_actor(console, request), serial))

    return api
