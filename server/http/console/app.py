"""The console's FastAPI app, served by `batm-server run` on --console-listen (HTTPS): the API
under /api/v1/ answers JSON, the pages answer HTML, errors included."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.console.service import ConsoleService
from server.errors import ServiceError
from server.http.body_limit import BodyLimit
from server.http.console.api import api_router
from server.http.console.firmware_pages import BUNDLE_LIMIT, firmware_router
from server.http.console.login import login_router
from server.http.console.page_actions import page_actions_router
from server.http.console.pages import pages_router
from server.http.console.remote_pages import remote_pages_router
from server.http.console.web import SECURITY_HEADERS, STATIC, NeedLogin, page_session, render
from server.http.error_handlers import install_error_handlers

CSV_LIMIT = 4 * 1024 * 1024
TITLES = {400: "Not understood", 403: "Not allowed", 404: "Not found", 409: "Not possible now",
          422: "Not accepted", 429: "Too many attempts", 503: "Not available"}


def create_console_app(console: ConsoleService) -> FastAPI:
    app = FastAPI(title="batm console", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    json_handlers = dict(app.exception_handlers)

    async def page_or_json(request: Request, exc: Exception) -> Response:
        """JSON for the API, a page with the same sentence for people."""
        if request.url.path.startswith("/api/"):
            return await json_handlers[type(exc)](request, exc)
        if isinstance(exc, NeedLogin):
            if request.headers.get("hx-request"):
                return Response(status_code=401, headers={"HX-Redirect": "/login"})
            return RedirectResponse("/login", status_code=303)
        if isinstance(exc, ServiceError):
            status, message = exc.status, exc.message
        else:
            assert isinstance(exc, StarletteHTTPException)
            status, message = exc.status_code, f"there is no page {request.url.path} here"
        session = None
        if status != 403:  # a CSRF refusal must not render a page with a fresh token
            try:
                session = page_session(console, request)
            except NeedLogin:
                session = None
        return render("error.html", request, status=status, session=session,
                      title=TITLES.get(status, "Failed"), error_message=message)

    for kind in (ServiceError, StarletteHTTPException, NeedLogin):
        app.add_exception_handler(kind, page_or_json)
    json_handlers[NeedLogin] = page_or_json

    @app.middleware("http")
    async def security_headers(request: Request, call_next) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        # The server's own time, for browsers' developer tools and bench/console_list.py.
        response.headers["Server-Timing"] = \
            f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    app.add_middleware(BodyLimit, large={"/terminals/import": CSV_LIMIT,
                                            "/firmware/bundles": BUNDLE_LIMIT})
    app.include_router(api_router(console))
    app.include_router(login_router(console))
    app.include_router(pages_router(console))
    app.include_router(remote_pages_router(console))
    app.include_router(firmware_router(console))
    app.include_router(page_actions_router(console))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
