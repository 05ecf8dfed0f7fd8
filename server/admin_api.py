"""The admin API (docs/protocol.md §3): the operator's side, used by the CLI and the web UI.

Served on the Unix socket data_dir/admin.sock (mode 0600), so the file system decides who is an
operator; there is no other authentication on it.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from server import wire
from server.body_limit import BodyLimit
from server.errors import ServiceError, bad_request
from server.http_errors import install_error_handlers
from server.master import MasterLink, MasterUnavailable
from server.master_records import MasterRecords, command_topic, status_topic
from server.notify import Notifier
from server.service import Service
from server.vpn_wire import install_vpn_routes


def _int_query(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) > maximum:
        raise bad_request(f"{name}: must be an integer from 0 to {maximum}, got {raw!r}")
    return int(raw)


def create_admin_app(
    service: Service, records: MasterRecords | None = None, master: MasterLink | None = None,
    notifier: Notifier | None = None, vpn=None,
) -> FastAPI:
    app = FastAPI(title="batm admin", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    install_vpn_routes(app, vpn)  # scenario A: terminal vpn SERIAL (server/vpn_wire.py)

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

    # ------------------------------------------------------------------ master service

    def need_master() -> tuple[MasterRecords, MasterLink]:
        if records is None or master is None:
            raise ServiceError(503, "master_unavailable", "this server runs no master service")
        return records, master

    @app.get("/api/v1/status")
    async def all_status() -> JSONResponse:
        return JSONResponse(need_master()[0].statuses())

    @app.get("/api/v1/terminals/{serial}/status")
    async def terminal_status(serial: str, request: Request) -> JSONResponse:
        history = _int_query(request, "history", 0, 1000)
        return JSONResponse(need_master()[0].status(serial, history))

    @app.get("/api/v1/terminals/{serial}/events")
    async def terminal_events(serial: str, request: Request) -> JSONResponse:
        limit = _int_query(request, "limit", 100, 100_000)
        return JSONResponse(await asyncio.to_thread(need_master()[0].events, serial, limit))

    @app.post("/api/v1/terminals/{serial}/commands")
    async def issue_command(serial: str, request: Request) -> JSONResponse:
        recs, link = need_master()
        body = wire.json_object(await request.body())
        command = recs.create_command(serial, body.get("command"), body.get("args"))
        message = {"id": command["id"], "command": command["command"], "args": command["args"]}
        if command["command"] == "unpair":
            # Best effort over MQTT; the revocation itself is server-side and immediate.
            with contextlib.suppress(MasterUnavailable):
                link.send_command(serial, message)
            service.unpair(serial)
            recs.finish_command(command["id"], {"unpaired": True})
        else:
            try:
                link.send_command(serial, message)
            except MasterUnavailable as exc:
                recs.fail_command(command["id"], str(exc))
        return JSONResponse(recs.command(serial, command["id"]), status_code=201)

    @app.get("/api/v1/terminals/{serial}/commands")
    async def list_commands(serial: str) -> JSONResponse:
        return JSONResponse(need_master()[0].commands(serial))

    @app.get("/api/v1/terminals/{serial}/commands/{command_id}")
    async def get_command(serial: str, command_id: str, request: Request) -> JSONResponse:
        """?wait=S: answer as soon as the command finished (and, for retrieve_logs, its archive
        arrived or it failed), or after S seconds."""
        recs = need_master()[0]
        wait = wire.wait_seconds(request.query_params.get("wait"), maximum=300)
        if notifier is None or wait <= 0:
            return JSONResponse(recs.command(serial, command_id))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            with notifier.listen(command_topic(command_id)) as listener:
                view = recs.command(serial, command_id)
                if _settled(view) or loop.time() >= deadline:
                    return JSONResponse(view)
                await listener.wait(max(0.0, deadline - loop.time()))

    @app.get("/api/v1/terminals/{serial}/status/wait")
    async def wait_status(serial: str, request: Request) -> JSONResponse:
        """Long-poll: the status once it was received after `after` (received_at), or after S s."""
        recs = need_master()[0]
        wait = wire.wait_seconds(request.query_params.get("wait"), maximum=300)
        after = request.query_params.get("after") or ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            with notifier.listen(status_topic(serial)) if notifier else _null() as listener:
                view = recs.status(serial)
                if (view["received_at"] or "") > after or loop.time() >= deadline or not listener:
                    return JSONResponse(view)
                await listener.wait(max(0.0, deadline - loop.time()))

    @app.get("/api/v1/terminals/{serial}/archives")
    async def list_archives(serial: str) -> JSONResponse:
        return JSONResponse(need_master()[0].archives(serial))

    @app.get("/api/v1/archives/{archive_id}")
    async def download_archive(archive_id: str) -> FileResponse:
        view, path = need_master()[0].archive_file(archive_id)
        return FileResponse(path, media_type="application/gzip", filename=view["filename"])

    @app.get("/api/v1/broker")
    async def broker_info() -> JSONResponse:
        link = need_master()[1]
        broker = link.broker
        return JSONResponse({"pid": broker.pid, "alive": broker.alive(),
                             "port": broker.mqtt_port, "restarts": broker.restarts,
                             "server_client_connected": link.connected.is_set()})

    @app.post("/api/v1/broker/restart")
    async def broker_restart() -> JSONResponse:
        link = need_master()[1]
        await asyncio.to_thread(link.broker.restart)
        await asyncio.to_thread(link.wait_connected, 10)
        return JSONResponse({"pid": link.broker.pid, "restarts": link.broker.restarts})

    return app


def _settled(view: dict) -> bool:
    if view["finished_at"] is None:
        return False
    return not (view["command"] == "retrieve_logs" and view["ok"] and not view["archives"])


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
