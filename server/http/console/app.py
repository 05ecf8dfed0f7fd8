"""The console's FastAPI app, served by `batm-server run` on --console-listen (HTTPS)."""

from __future__ import annotations

from fastapi import FastAPI

from server.console.service import ConsoleService
from server.http.body_limit import BodyLimit
from server.http.console.api import api_router
from server.http.error_handlers import install_error_handlers


def create_console_app(console: ConsoleService) -> FastAPI:
    app = FastAPI(title="batm console", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    app.include_router(api_router(console))
    return app
