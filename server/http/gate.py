"""The gate: the HTTPS API terminals talk to (docs/protocol.md §2).

Thin on purpose: it reads the request (body, signature headers, peer address), hands it to the
domains, and turns long-polls into waits on the Notifier. All decisions live in the domains:
pairing/ (hello, reveal, check-in, session), firmware/ (upgrades), master/ and vpn/.
"""

from __future__ import annotations

import asyncio
import re

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from batm_common import signing
from server.errors import ServiceError, bad_request
from server.firmware.gate import UpgradeGate
from server.http import fields
from server.http.body_limit import BodyLimit
from server.http.bundle_download import install_bundle_download
from server.http.error_handlers import install_error_handlers
from server.http.upload import UploadSlots, declared_length, stream_to_file
from server.master.archives import MAX_ARCHIVE
from server.master.assignment import assign
from server.master.dynsec import topic_prefix
from server.master.link import MasterLink, MasterUnavailable
from server.master.service import MasterService
from server.notify import Notifier, pairing_topic, session_topic
from server.pairing.authentication import Authenticator, SignedRequest
from server.pairing.requests import PairingRequests
from server.pairing.states import PairingStatus, SessionStatus
from server.vpn.gate import VpnGate

IDENTITY_KEY_BYTES = 32
NONCE_BYTES = 32
COMMITMENT_BYTES = 32  # SHA-256
# The terminal makes its MQTT password: 32 random bytes, base64url without padding.
MQTT_PASSWORD = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _path_with_query(request: Request) -> str:
    """The request target exactly as the terminal sent (and signed) it, undecoded."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    path = raw_path.decode("latin-1").split("?", 1)[0]
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


async def _signed(request: Request) -> SignedRequest:
    return _signed_headers(request, await request.body())


def _signed_headers(request: Request, body: bytes | None = None) -> SignedRequest:
    """Without `body`: the signed X-BATM-Content-SHA256 header stands for it (uploads)."""
    return SignedRequest(
        method=request.method,
        path_with_query=_path_with_query(request),
        body=body,
        serial=request.headers.get(signing.HEADER_SERIAL),
        timestamp=request.headers.get(signing.HEADER_TIMESTAMP),
        signature=request.headers.get(signing.HEADER_SIGNATURE),
        body_sha256=request.headers.get(signing.HEADER_CONTENT_SHA256),
        nonce=request.headers.get(signing.HEADER_NONCE),
    )


def _peer(request: Request) -> str | None:
    return request.client.host if request.client else None


def _assigned_broker(master: MasterService, serial: str, request: Request) -> str:
    """The terminal's broker: assigned from the fleet's list (master/assignment.py), or this
    server's own broker."""
    if master.brokers:
        return str(assign(serial, list(master.brokers)))
    return _broker_address(master.link, request)


def _broker_address(master: MasterLink, request: Request) -> str:
    """HOST:PORT of the broker's TLS listener, as the requesting terminal can reach it."""
    host = master.broker.settings.listen.host
    if host in ("0.0.0.0", "::", ""):
        host = request.url.hostname or host  # the address the terminal reached us on
    port = master.broker.mqtt_port
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def create_gate_app(
    requests: PairingRequests, auth: Authenticator, notifier: Notifier, *,
    master: MasterService | None = None, upgrades: UpgradeGate | None = None,
    vpn: VpnGate | None = None,
) -> FastAPI:
    app = FastAPI(title="batm gate", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    if upgrades is not None:
        install_bundle_download(app, upgrades)  # GET /api/v1/firmware/{id}/bundle (Range)
    app.add_middleware(BodyLimit, large={"/api/v1/logs/": MAX_ARCHIVE})
    uploads = UploadSlots()

    @app.post("/api/v1/hello")
    async def hello(request: Request) -> JSONResponse:
        body = fields.json_object(await request.body())
        serial = fields.text(body, "serial", max_len=64)
        version = fields.integer(body, "version")
        hardware = fields.text(body, "hardware", max_len=100)
        identity_key = fields.b64url_bytes(body, "identity_key", IDENTITY_KEY_BYTES)
        commitment = fields.hex_digest(body, "commitment", COMMITMENT_BYTES)
        assert serial is not None and hardware is not None
        requests.limit_hello(serial, _peer(request))  # 429 beyond the hello rates
        if upgrades is not None:  # too old to pair: the next upgrade step instead
            slot_hw = fields.text(body, "firmware_hardware", max_len=32, optional=True)
            upgrade = upgrades.hello(serial, version, slot_hw, peer=_peer(request))
            if upgrade is not None:
                return JSONResponse(upgrade)
        answer = requests.hello(
            serial, version, hardware, identity_key, commitment, peer=_peer(request)
        )
        return JSONResponse(answer)

    @app.post("/api/v1/pairing/{request_id}/reveal")
    async def reveal(request_id: str, request: Request) -> JSONResponse:
        signed = await _signed(request)
        body = fields.json_object(signed.body)
        nonce = fields.b64url_bytes(body, "terminal_nonce", NONCE_BYTES)
        return JSONResponse(requests.reveal(request_id, signed, nonce))

    @app.get("/api/v1/pairing/{request_id}")
    async def pairing_poll(request_id: str, request: Request) -> JSONResponse:
        wait = fields.wait_seconds(request.query_params.get("wait"))
        signed = await _signed(request)
        # Listen before reading the state, so an approval in between is not missed.
        with notifier.listen(pairing_topic(request_id)) as listener:
            answer = requests.pairing_status(request_id, signed)
            if answer["status"] == PairingStatus.PENDING and wait > 0 and await listener.wait(wait):
                answer = requests.pairing_status(request_id)  # 404 if replaced meanwhile
        return JSONResponse(answer)

    @app.post("/api/v1/checkin")
    async def checkin(request: Request) -> JSONResponse:
        signed = await _signed(request)
        body = fields.json_object(signed.body)
        version = fields.integer(body, "version")
        answer = auth.checkin(signed, version)
        if master is not None and body.get("master") is True:
            answer["broker"] = _assigned_broker(master, signed.serial or "", request)  # moved?
        if vpn is not None:  # scenario A: the VPN, and the broker at its tunnel address
            answer |= vpn.checkin(signed.serial or "", body, request.url.hostname,
                                  master.link if master is not None else None)
        return JSONResponse(answer)

    @app.get("/api/v1/session")
    async def session(request: Request) -> JSONResponse:
        wait = fields.wait_seconds(request.query_params.get("wait"))
        signed = await _signed(request)
        serial = signed.serial or ""
        with notifier.listen(session_topic(serial)) as listener:
            answer, key = auth.session_open(signed)
            if answer["status"] == SessionStatus.PAIRED and wait > 0 and await listener.wait(wait):
                answer = auth.session_status(serial, key)
        return JSONResponse(answer)

    @app.post("/api/v1/master/credentials")
    async def master_credentials(request: Request) -> JSONResponse:
        """The terminal hands over the MQTT password it made; the broker gets it (dynsec keeps
        only a salted hash) and the terminal learns where the broker is."""
        signed = await _signed(request)
        body = fields.json_object(signed.body)
        password = fields.text(body, "password", max_len=100)
        if password is None or not MQTT_PASSWORD.match(password):
            raise bad_request("password: must be 32 random bytes in base64url (43 characters)")
        serial = auth.paired_terminal(signed)
        if master is None:
            raise ServiceError(503, "master_unavailable", "this server runs no master service")
        broker = _assigned_broker(master, serial, request)
        if master.brokers and broker != str(master.brokers[0]):
            raise ServiceError(503, "master_unavailable",
                               f"terminal {serial} is assigned to the broker {broker}; its "
                               "credentials come from the server replica that runs it")
        try:
            await asyncio.to_thread(master.grant, serial, password)
        except MasterUnavailable as exc:
            raise ServiceError(503, "master_unavailable",
                               f"the master service is not available: {exc}") from exc
        answer = {"broker": broker, "username": serial,
                  "topic_prefix": topic_prefix(serial), "client_id": serial}  # bound (grant)
        if vpn is not None:  # scenario A: only through the tunnel (vpn/gate.py)
            try:
                answer |= await asyncio.to_thread(vpn.credentials, serial, master.link)
            except MasterUnavailable as exc:
                raise ServiceError(503, "master_unavailable",
                                   f"the master service is not available: {exc}") from exc
        return JSONResponse(answer)

    @app.post("/api/v1/logs/{command_id}")
    async def upload_logs(command_id: str, request: Request) -> JSONResponse:
        # Who is asking, before a byte of the body is read (http/upload.py).
        signed = _signed_headers(request)
        serial = auth.paired_terminal(signed)
        if master is None:
            raise ServiceError(503, "master_unavailable", "this server runs no master service")
        archives = master.archives
        limit = await asyncio.to_thread(archives.upload_limit, serial, command_id)
        declared_length(request, limit)
        async with uploads.slot():
            partial = archives.partial_path()
            size, digest = await stream_to_file(request, partial, limit, signed.digest())
            archive = await asyncio.to_thread(archives.store_file, serial, command_id, partial,
                                              size, digest)
        return JSONResponse(archive, status_code=201)

    return app
