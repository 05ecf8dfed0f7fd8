"""Logging in and out of the console's pages: name, password and, for whoever may act, a
current TOTP code; failures count against the account and the address (growing lockouts).

The password check runs in a worker thread: argon2id is slow on purpose, and the event loop
also serves the terminals' gate.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from server.console.lockouts import account_key, address_key
from server.console.permissions import Action
from server.console.service import ConsoleService
from server.errors import ServiceError
from server.http.console.bearer import source_address
from server.http.console.web import (
    COOKIE,
    checked_form,
    clear_session_cookie,
    render,
    set_session_cookie,
)

MAX_NAME = 64
WRONG = "wrong user name, password or authenticator code"
STALE = "this login form is stale or came from another site; log in again on this page"
# The login form's own CSRF token, before there is a session: a cookie the form must repeat.
# SameSite=Strict keeps it off other sites' requests, so no page elsewhere can log a browser
# in to an account of the attacker's choosing.
LOGIN_COOKIE = "__Host-batm_login"
LOGIN_FIELD = "login_token"


def login_form(request: Request, *, status: int = 200, **context) -> Response:
    token = secrets.token_urlsafe(24)
    response = render("login.html", request, status=status, login_token=token, **context)
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, path="/", secure=True,
                        httponly=True, samesite="strict")
    return response


def login_token_matches(request: Request, sent: object) -> bool:
    kept = request.cookies.get(LOGIN_COOKIE)
    return (isinstance(sent, str) and kept is not None
            and hmac.compare_digest(sent.encode(), kept.encode()))


def login_router(console: ConsoleService) -> APIRouter:
    router = APIRouter()

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        if console.browser_sessions.find(request.cookies.get(COOKIE)) is not None:
            return RedirectResponse("/terminals", status_code=303)
        return login_form(request)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        name, password, code = (str(form.get(k) or "") for k in ("name", "password", "code"))
        name = name.strip()[:MAX_NAME]
        source = source_address(request)
        if not login_token_matches(request, form.get(LOGIN_FIELD)):
            console.audit.record(name or "-", Action.LOGIN, "csrf", source=source)
            return login_form(request, status=403, name=name, message=STALE,
                              message_kind="error")
        keys = [account_key(name), address_key(source)]
        try:
            console.lockouts.check(keys)
        except ServiceError as exc:
            console.audit.record(name or "-", Action.LOGIN, exc.code, source=source,
                                 detail=exc.message)
            return login_form(request, status=429, name=name, message=exc.message,
                              message_kind="error")
        good = await asyncio.to_thread(console.users.check_password, name, password)
        if good and console.users.needs_totp(name):
            good = console.users.check_totp(name, code)
        if not good:
            console.lockouts.fail(keys)
            console.audit.record(name or "-", Action.LOGIN, "bad_credentials", source=source)
            return login_form(request, status=401, name=name, message=WRONG,
                              message_kind="error")
        console.lockouts.succeed(account_key(name))
        console.audit.record(name, Action.LOGIN, source=source)
        response = RedirectResponse("/terminals", status_code=303)
        set_session_cookie(response, console.browser_sessions.open(name, source))
        response.delete_cookie(LOGIN_COOKIE, path="/", secure=True, httponly=True,
                               samesite="strict")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session, _ = await checked_form(console, request)
        console.browser_sessions.close(request.cookies.get(COOKIE))
        console.audit.record(session.principal.name, Action.LOGOUT,
                             source=source_address(request))
        response = RedirectResponse("/login", status_code=303)
        clear_session_cookie(response)
        return response

    return router
