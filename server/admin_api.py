"""The admin API (docs/protocol.md §3): the operator's side, used by the CLI and the web UI.

Served on the Unix socket data_dir/admin.sock (mode 0600), so the file system decides who is an
operator; there is no other authentication on it.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from server import wire
from server.body_limit import BodyLimit
from server.http_errors import install_error_handlers
from server.service import Service


def create_admin_app(service: Service) -> FastAPI:
    app = FastAPI(title="batm admin", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    app.add_middleware(BodyLimit)

    @app.get("/api/v1/terminals")
    async def list_terminals() -> JSONResponse:
        return JSONResponse(service.list_terminals())

    @app.post("/api/v1/terminals")
    async def create_terminal(request: Request) -> JSONResponse:
        body = wire.json_object(await request.body())
        serial = wire.text(body, "serial", max_len=100)
        scenario = wire.text(body, "scenario", max_len=10)
        location = wire.text(body, "location", optional=True)
        assert serial is not None and scenario is not None
        return JSONResponse(service.create_terminal(serial, scenario, location), status_code=201)

    @app.get("/api/v1/terminals/{serial}")
    async def get_terminal(serial: str) -> JSONResponse:
        return JSONResponse(service.get_terminal(serial))

    @app.post("/api/v1/terminals/{serial}/unpair")
    async def unpair(serial: str) -> JSONResponse:
        return JSONResponse(service.unpair(serial))

    @app.delete("/api/v1/terminals/{serial}")
    async def delete_terminal(serial: str) -> Response:
        service.delete_terminal(serial)
        return Response(status_code=204)

    @app.get("/api/v1/pairing-requests")
    async def list_pairing_requests() -> JSONResponse:
        return JSONResponse(service.list_pairing_requests())

    @app.post("/api/v1/pairing-requests/{serial}/approve")
    async def approve(serial: str, request: Request) -> JSONResponse:
        body = wire.json_object(await request.body())
        code = wire.text(body, "code", max_len=100)
        assert code is not None
        return JSONResponse(service.approve(serial, code))

    return app
