"""What every console page shares: the templates, the session cookie, the CSRF check, and the
headers that keep the pages to themselves.

The cookie is `__Host-` prefixed, Secure, HttpOnly and SameSite=Strict: sent only over HTTPS,
to this host, never to scripts and never on another site's requests. Every state-changing page
request must also carry the session's CSRF token (a form field, or htmx's X-CSRF-Token header);
without it the request is refused with 403 before anything is read or changed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from batm_common.clock import utcnow
from server.console.permissions import Action
from server.console.service import ConsoleService
from server.console.sessions import LIFETIME, BrowserSession
from server.errors import ServiceError
from server.http.console.bearer import source_address

HERE = Path(__file__).parent
STATIC = HERE / "static"
COOKIE = "__Host-batm_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; frame-ancestors 'none'; form-action 'self'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

_templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                         autoescape=select_autoescape(["html"]), auto_reload=False)
_templates.filters["urlencode"] = lambda value: quote(str(value), safe="")
LOG_PERIOD = datetime.timedelta(hours=1)  # the retrieve-logs dialog proposes the last hour
LOG_KB = (1024, 64 * 1024)  # its default and largest maximum size, KB


def _log_period() -> dict:
    """The retrieve-logs dialog's defaults, in the datetime-local fields' form (UTC)."""
    now = utcnow()
    return {"since": (now - LOG_PERIOD).strftime("%Y-%m-%dT%H:%M"),
            "until": (now + datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"),
            "kb": LOG_KB}


_templates.globals["log_period"] = _log_period


def digest(data: object) -> str:
    """A short fingerprint of what a live part of a page shows: its poll sends it back, and
    the answer is 204 (htmx keeps the part) while it is unchanged."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


_templates.filters["digest"] = digest


class NeedLogin(Exception):
    """No live session: a page sends the browser to /login (htmx gets 401 instead)."""


def render(template: str, request: Request, *, status: int = 200,
           session: BrowserSession | None = None, **context) -> HTMLResponse:
    html = _templates.get_template(template).render(session=session, actions=Action,
                                                request=request, **context)
    return HTMLResponse(html, status_code=status,
                        headers={"Cache-Control": "no-store"})


def page_session(console: ConsoleService, request: Request) -> BrowserSession:
    session = console.browser_sessions.find(request.cookies.get(COOKIE))
    if session is None:
        raise NeedLogin()
    return session


async def checked_form(console: ConsoleService, request: Request) -> tuple[BrowserSession, dict]:
    """The session and the form of a state-changing request, once its CSRF token matched."""
    session = page_session(console, request)
    sent = request.headers.get(CSRF_HEADER)
    form: dict = {}
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        parsed = await request.form()
        form = {key: parsed.get(key) for key in parsed}
        sent = sent or (form.get(CSRF_FIELD) if isinstance(form.get(CSRF_FIELD), str) else None)
    if not session.csrf_matches(sent):
        console.audit.record(session.principal.name, Action.FORM, "csrf",
                             source=source_address(request),
                             detail=f"{request.method} {request.url.path}")
        raise ServiceError(403, "csrf", "this form is stale or came from another site (its "
                                        "CSRF token is missing or wrong); reload the page and "
                                        "try again")
    return session, form


def set_session_cookie(response: Response, value: str) -> None:
    response.set_cookie(COOKIE, value, max_age=int(LIFETIME.total_seconds()), path="/",
                        secure=True, httponly=True, samesite="strict")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")


def text_field(form: dict, name: str, max_len: int = 200) -> str:
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ServiceError(400, "bad_request", f"{name.replace('_', ' ')}: this field is empty")
    if len(value) > max_len:
        raise ServiceError(400, "bad_request", f"{name}: longer than {max_len} characters")
    return value.strip()
