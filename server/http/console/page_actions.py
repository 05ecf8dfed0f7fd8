"""The row action menu's requests: approve (the code typed from the kiosk), unpair and delete
(each confirmed), generate VPN configuration; and the VPN configuration's download.

Each answers with the terminal's page and a sentence saying what happened, or what was
refused and why, with the refusal's status (the same ServiceError as the API's).
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from server.console.actions import Actor
from server.console.service import ConsoleService
from server.errors import ServiceError
from server.http.console.bearer import source_address
from server.http.console.web import checked_form, page_session, render, text_field


def _confirmed(form: dict, what: str) -> None:
    if form.get("confirm") != "yes":
        raise ServiceError(400, "not_confirmed",
                           f"tick the box to confirm that you want to {what} the terminal")


def page_actions_router(console: ConsoleService) -> APIRouter:
    router = APIRouter()

    async def act(request: Request, serial: str, action: str) -> Response:
        session, form = await checked_form(console, request)
        actor = Actor(session.principal, source_address(request))
        actions = console.actions
        try:
            if action == "approve":
                actions.approve(actor, serial, text_field(form, "code", 20))
                message = f"Approved: terminal {serial} is paired and goes into service."
            elif action == "unpair":
                _confirmed(form, "unpair")
                actions.unpair(actor, serial)
                message = f"Unpaired: terminal {serial} now shows a new pairing code."
            elif action == "vpn":
                view = actions.generate_vpn(actor, serial)
                message = (f"VPN configuration generated: tunnel address "
                           f"{view.get('tunnel_address')}. Set the server on the kiosk next.")
            else:
                _confirmed(form, "delete")
                actions.delete(actor, serial)
                return RedirectResponse("/terminals", status_code=303)
        except ServiceError as exc:
            if exc.status in (401, 404):
                raise  # no page to show: the terminal does not exist for this user
            return render("terminal.html", request, status=exc.status, session=session,
                          t=console.fleet.terminal(session.principal, serial),
                          message=exc.message, message_kind="error")
        return render("terminal.html", request, session=session,
                      t=console.fleet.terminal(session.principal, serial), message=message)

    for name in ("approve", "unpair", "vpn", "delete"):
        async def endpoint(serial: str, request: Request, _action: str = name) -> Response:
            return await act(request, serial, _action)

        router.add_api_route(f"/terminals/{{serial}}/{name}", endpoint, methods=["POST"])

    @router.get("/terminals/{serial}/vpn.json")
    async def download_vpn(serial: str, request: Request) -> Response:
        session = page_session(console, request)
        view = console.actions.vpn_config(Actor(session.principal, source_address(request)),
                                          serial)
        return Response(json.dumps(view, indent=2) + "\n", media_type="application/json",
                        headers={"Content-Disposition":
                                 f'attachment; filename="{serial}-vpn.json"'})

    return router
