"""The monitor's remote tools as page requests: retrieve logs (the dialog's period and maximum
size), reset local database and reboot (each confirmed, naming the terminal), the same for the
selected rows; the live list of commands and results, and the log archives' download.

A request made by htmx answers with a line per terminal for the page's notice area (what was
sent, or why it was refused); without htmx the browser goes back to the list. Everything is
console/remote.py's: checked against the user's locations and role, and audited.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from batm_common.remote_commands import RemoteCommand
from server.console.actions import Actor
from server.console.remote import Outcome
from server.console.service import ConsoleService
from server.errors import ServiceError, bad_request
from server.http.console.bearer import source_address
from server.http.console.web import checked_form, digest, page_session, render

SENT = {RemoteCommand.RETRIEVE_LOGS: "logs requested; the download link appears below when "
                                     "the terminal has uploaded them",
        RemoteCommand.RESET_DB: "reset of the local database sent; the result appears below",
        RemoteCommand.REBOOT: "reboot sent"}
MAX_KB = 64 * 1024


def log_args(form: dict) -> dict:
    """The dialog's fields as retrieve_logs' arguments (checked again by the command)."""
    raw = form.get("max_kb")
    kb = int(raw) if isinstance(raw, str) and raw.strip().isdigit() else None
    if kb is None or not 1 <= kb <= MAX_KB:
        raise bad_request(f"maximum size: give a number of KB from 1 to {MAX_KB}, not {raw!r}")
    return {"since": form.get("since"), "until": form.get("until"), "max_size": kb * 1024}


def _confirmed(form: dict, what: str) -> None:
    if form.get("confirm") != "yes":
        raise bad_request(f"tick the box to confirm that you want to {what}")


def remote_pages_router(console: ConsoleService) -> APIRouter:
    router = APIRouter()

    def answer(request: Request, outcomes: list[Outcome], command: RemoteCommand,
               status: int = 200) -> Response:
        if not request.headers.get("hx-request"):
            return RedirectResponse("/terminals", status_code=303)
        return render("_notice.html", request, status=status, outcomes=outcomes,
                      sent_label=SENT[command])

    async def one(request: Request, serial: str, command: RemoteCommand) -> Response:
        session, form = await checked_form(console, request)
        actor = Actor(session.principal, source_address(request))
        try:
            if command == RemoteCommand.RESET_DB:
                _confirmed(form, f"reset the local database of {serial}")
            elif command == RemoteCommand.REBOOT:
                _confirmed(form, f"reboot {serial}")
            args = log_args(form) if command == RemoteCommand.RETRIEVE_LOGS else None
            await asyncio.to_thread(console.remote.issue, actor, serial, command, args)
        except ServiceError as exc:
            if exc.status in (401, 404):
                raise  # the terminal does not exist for this user: nothing to say about it
            return answer(request, [Outcome(serial, None, exc.message)], command, exc.status)
        return answer(request, [Outcome(serial, {}, None)], command)

    for path, command in (("logs", RemoteCommand.RETRIEVE_LOGS),
                          ("reset-db", RemoteCommand.RESET_DB),
                          ("reboot", RemoteCommand.REBOOT)):
        async def endpoint(serial: str, request: Request,
                           _command: RemoteCommand = command) -> Response:
            return await one(request, serial, _command)

        router.add_api_route(f"/terminals/{{serial}}/{path}", endpoint, methods=["POST"])

    @router.post("/terminals/bulk")
    async def bulk(request: Request) -> Response:
        """The selected rows: reboot them, or retrieve their logs with the dialog's fields."""
        session, form = await checked_form(console, request)
        parsed = await request.form()
        serials = [s for s in parsed.getlist("serial") if isinstance(s, str)]
        name = form.get("command")
        command = RemoteCommand(name) if name in (RemoteCommand.REBOOT,
                                                  RemoteCommand.RETRIEVE_LOGS) else None
        try:
            if command is None:
                raise bad_request("choose reboot or retrieve logs for the selected terminals")
            args = log_args(form) if command == RemoteCommand.RETRIEVE_LOGS else None
            actor = Actor(session.principal, source_address(request))
            outcomes = await asyncio.to_thread(console.remote.issue_many, actor, serials,
                                               command, args)
        except ServiceError as exc:
            return answer(request, [Outcome("selected terminals", None, exc.message)],
                          command or RemoteCommand.REBOOT, exc.status)
        return answer(request, outcomes, command)

    @router.get("/monitor/commands")
    async def commands(request: Request) -> Response:
        """The remote commands panel alone (what the page's live refresh swaps in)."""
        session = page_session(console, request)
        serial = request.query_params.get("serial") or None
        if serial is not None:
            console.fleet.terminal(session.principal, serial)  # 404 outside one's locations
        recent = await asyncio.to_thread(console.remote.recent, session.principal, serial)
        if request.query_params.get("digest") == digest(recent):
            return Response(status_code=204)  # nothing new: htmx keeps the panel
        return render("_commands.html", request, session=session, commands=recent,
                      serial_filter=serial)

    @router.get("/archives/{archive_id}")
    async def archive(archive_id: str, request: Request) -> FileResponse:
        session = page_session(console, request)
        view, path = console.remote.archive_file(session.principal, archive_id)
        return FileResponse(path, media_type="application/gzip", filename=view["filename"])

    return router
