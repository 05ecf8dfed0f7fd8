"""The admin API (docs/protocol.md §3): the operator's side, used by the CLI and the web UI.

Served on the Unix socket data_dir/admin.sock (mode 0600), so the file system decides who is an
operator; there is no other authentication on it.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from batm_common.remote_commands import RemoteCommand
from server.console.fleet import Fleet
from server.errors import ServiceError
from server.http import fields
from server.http.body_limit import BodyLimit
from server.http.console.api import list_query
from server.http.error_handlers import install_error_handlers
from server.master.assignment import assign
from server.master.link import MasterUnavailable
from server.master.service import MasterService
from server.notify import Notifier, command_topic, status_topic
from server.pairing.enrollment import MAX_ENROLL_BODY, Enrollment
from server.pairing.registry import Registry
from server.pairing.requests import PairingRequests
from server.vpn.service import VpnService


def create_admin_app(
    registry: Registry, requests: PairingRequests, *, master: MasterService | None = None,
    notifier: Notifier | None = None, vpn: VpnService | None = None,
    fleet: Fleet | None = None,
    enrollment: Enrollment | None = None,
) -> FastAPI:
    app = FastAPI(title="batm admin", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, large={"/api/v1/terminals/enroll": MAX_ENROLL_BODY})

    @app.get("/api/v1/terminals")
    async def list_terminals(request: Request) -> JSONResponse:
        """Every terminal with its monitor fields; the console's filters (location,
        updated_within, hide_synced, state, highlight, q, sort, order) narrow it."""
        if fleet is None:
            return JSONResponse(registry.list_terminals())
        return JSONResponse(await asyncio.to_thread(fleet.listing, list_query(request)))

    @app.post("/api/v1/terminals")
    async def create_terminal(request: Request) -> JSONResponse:
        body = fields.json_object(await request.body())
        serial = fields.text(body, "serial", max_len=100)
        scenario = fields.text(body, "scenario", max_len=10)
        location = fields.text(body, "location", optional=True)
        assert serial is not None and scenario is not None
        return JSONResponse(registry.create_terminal(serial, scenario, location), status_code=201)

    @app.post("/api/v1/terminals/enroll")
    async def enroll(request: Request) -> JSONResponse:
        """Bulk pre-approval by identity key (pairing/enrollment.py)."""
        if enrollment is None:
            raise ServiceError(503, "unavailable", "this server does not enroll terminals")
        body = fields.json_object(await request.body())
        if master is not None and master.brokers:
            refuse_accounts_of_other_brokers(body.get("terminals"), list(master.brokers))
        answer, accounts = await asyncio.to_thread(enrollment.enroll, body.get("scenario"),
                                                   body.get("terminals"))
        if accounts:  # into the plugin's file at once, one broker restart (enrollment.py)
            if master is None:
                raise ServiceError(503, "master_unavailable",
                                   "enrolled, but this server runs no broker for the accounts; "
                                   "the terminals can obtain credentials themselves")
            await asyncio.to_thread(master.link.broker.add_accounts, accounts)
        return JSONResponse(answer, status_code=201)

    @app.get("/api/v1/terminals/{serial}")
    async def get_terminal(serial: str) -> JSONResponse:
        return JSONResponse(registry.get_terminal(serial))

    @app.post("/api/v1/terminals/{serial}/unpair")
    async def unpair(serial: str) -> JSONResponse:
        return JSONResponse(registry.unpair(serial))

    @app.delete("/api/v1/terminals/{serial}")
    async def delete_terminal(serial: str) -> Response:
        registry.delete_terminal(serial)
        return Response(status_code=204)

    @app.get("/api/v1/pairing-requests")
    async def list_pairing_requests() -> JSONResponse:
        return JSONResponse(requests.list_pairing_requests())

    @app.post("/api/v1/pairing-requests/{serial}/approve")
    async def approve(serial: str, request: Request) -> JSONResponse:
        body = fields.json_object(await request.body())
        code = fields.text(body, "code", max_len=100)
        assert code is not None
        return JSONResponse(requests.approve(serial, code))

    # ------------------------------------------------------------------ master service

    def need_master() -> MasterService:
        if master is None:
            raise ServiceError(503, "master_unavailable", "this server runs no master service")
        return master

    @app.get("/api/v1/status")
    async def all_status() -> JSONResponse:
        return JSONResponse(need_master().monitoring.statuses())

    @app.get("/api/v1/terminals/{serial}/status")
    async def terminal_status(serial: str, request: Request) -> JSONResponse:
        history = fields.int_query(request.query_params.get("history"), "history", 0, 1000)
        return JSONResponse(need_master().monitoring.status(serial, history))

    @app.get("/api/v1/terminals/{serial}/events")
    async def terminal_events(serial: str, request: Request) -> JSONResponse:
        limit = fields.int_query(request.query_params.get("limit"), "limit", 100, 100_000)
        return JSONResponse(await asyncio.to_thread(need_master().monitoring.events, serial,
                                                    limit))

    @app.post("/api/v1/terminals/{serial}/commands")
    async def issue_command(serial: str, request: Request) -> JSONResponse:
        parts = need_master()
        commands, link = parts.commands, parts.link
        body = fields.json_object(await request.body())
        if body.get("command") != RemoteCommand.UNPAIR:
            return JSONResponse(parts.issue(serial, body.get("command"), body.get("args")),
                                status_code=201)
        command = commands.create_command(serial, body.get("command"), body.get("args"))
        message = {"id": command["id"], "command": command["command"], "args": command["args"]}
        # Best effort over MQTT; the revocation itself is server-side and immediate.
        with contextlib.suppress(MasterUnavailable):
            link.send_command(serial, message)
        registry.unpair(serial)
        commands.finish_command(command["id"], {"unpaired": True})
        return JSONResponse(commands.command(serial, command["id"]), status_code=201)

    @app.get("/api/v1/terminals/{serial}/commands")
    async def list_commands(serial: str) -> JSONResponse:
        return JSONResponse(need_master().commands.commands(serial))

    @app.get("/api/v1/terminals/{serial}/commands/{command_id}")
    async def get_command(serial: str, command_id: str, request: Request) -> JSONResponse:
        """?wait=S: answer as soon as the command finished (and, for retrieve_logs, its archive
        arrived or it failed), or after S seconds."""
        commands = need_master().commands
        wait = fields.wait_seconds(request.query_params.get("wait"), maximum=300)
        if notifier is None or wait <= 0:
            return JSONResponse(commands.command(serial, command_id))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            with notifier.listen(command_topic(command_id)) as listener:
                view = commands.command(serial, command_id)
                if _settled(view) or loop.time() >= deadline:
                    return JSONResponse(view)
                await listener.wait(max(0.0, deadline - loop.time()))

    @app.get("/api/v1/terminals/{serial}/status/wait")
    async def wait_status(serial: str, request: Request) -> JSONResponse:
        """Long-poll: the status once one was received after `after` (received_at) or the row
        changed otherwise (a refused message counted on it wakes the same topic), or after S s.
        Only received_at used to end the wait, so a refusal waited for the next status."""
        monitoring = need_master().monitoring
        wait = fields.wait_seconds(request.query_params.get("wait"), maximum=300)
        after = request.query_params.get("after") or ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        with notifier.listen(status_topic(serial)) if notifier else _null() as listener:
            view = monitoring.status(serial)
            if (view["received_at"] or "") > after or not listener:
                return JSONResponse(view)
            await listener.wait(max(0.0, deadline - loop.time()))
        return JSONResponse(monitoring.status(serial))

    @app.get("/api/v1/terminals/{serial}/archives")
    async def list_archives(serial: str) -> JSONResponse:
        return JSONResponse(need_master().archives.archives(serial))

    @app.get("/api/v1/archives/{archive_id}")
    async def download_archive(archive_id: str) -> FileResponse:
        view, path = need_master().archives.archive_file(archive_id)
        return FileResponse(path, media_type="application/gzip", filename=view["filename"])

    @app.get("/api/v1/master/ingest")
    async def ingest_stats() -> JSONResponse:
        """What the ingestion stored since start, its CPU per message, the status lag."""
        link = need_master().link
        return JSONResponse({"replica": link.replica, "client_id": link.client_id,
                             **link.stats.snapshot()})

    @app.get("/api/v1/broker")
    async def broker_info() -> JSONResponse:
        link = need_master().link
        broker = link.broker
        return JSONResponse({"pid": broker.pid, "alive": broker.alive(),
                             "port": broker.mqtt_port, "restarts": broker.restarts,
                             "server_client_connected": link.connected.is_set()})

    @app.post("/api/v1/broker/restart")
    async def broker_restart() -> JSONResponse:
        link = need_master().link
        await asyncio.to_thread(link.broker.restart)
        await asyncio.to_thread(link.wait_connected, 10)
        return JSONResponse({"pid": link.broker.pid, "restarts": link.broker.restarts})

    # ------------------------------------------------------------------ VPN (scenario A)

    def need_vpn() -> VpnService:
        if vpn is None:
            raise ServiceError(503, "vpn_unavailable", "this server has no VPN service")
        return vpn

    @app.post("/api/v1/terminals/{serial}/vpn")
    async def generate_vpn(serial: str) -> JSONResponse:
        return JSONResponse(need_vpn().generate(serial))

    @app.get("/api/v1/terminals/{serial}/vpn")
    async def get_vpn(serial: str) -> JSONResponse:
        return JSONResponse(need_vpn().view(serial))

    @app.get("/api/v1/vpn")
    async def vpn_endpoint() -> JSONResponse:
        endpoint = need_vpn().endpoint
        if endpoint is None:
            return JSONResponse({"running": False})
        return JSONResponse({
            "running": True, "interface": endpoint.iface.name, "kind": endpoint.iface.kind,
            "listen_port": endpoint.settings.listen_port,
            "address": str(endpoint.settings.address), "public_key": endpoint.public_key,
            "restarts": endpoint.restarts,
        })

    return app


def _settled(view: dict) -> bool:
    if view["finished_at"] is None:
        return False
    return not (view["command"] == RemoteCommand.RETRIEVE_LOGS and view["ok"]
                and not view["archives"])


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def refuse_accounts_of_other_brokers(items: object, brokers: list) -> None:
    """With several brokers a replica writes accounts only into its own (brokers[0]): an
    enrollment carrying the account of a terminal assigned to another broker is refused whole,
    before anything is stored, naming the first such terminals and their brokers; enroll those
    through the replica that runs their broker (master/assignment.py)."""
    if not isinstance(items, list):
        return  # the enrollment itself says what is wrong with it
    elsewhere = [(item["serial"], assign(item["serial"], brokers)) for item in items
                 if isinstance(item, dict) and isinstance(item.get("serial"), str)
                 and item.get("mqtt") is not None
                 and assign(item["serial"], brokers) != brokers[0]]
    if elsewhere:
        named = ", ".join(f"{serial} → {broker}" for serial, broker in elsewhere[:3])
        raise ServiceError(
            409, "other_broker",
            f"{len(elsewhere)} of the terminals' accounts belong on another broker ({named}"
            f"{', …' if len(elsewhere) > 3 else ''}); enroll them through the replica that "
            f"runs it, or without their \"mqtt\" (they then ask for credentials themselves)")
