"""The gate adapter: HTTPS to the server's gate (docs/protocol.md §2).

Trust: before pairing the terminal knows nothing about the server, so it connects without
verification (trust on first use) and takes the server's key from the TLS handshake itself —
that key goes into the pairing code, so an interceptor is exposed when the operator compares
codes. From the hello on, every answer must come from that same key; once paired the chain is
also verified against the server's CA. Any other key is a `CertificateMismatchError`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import ssl
import time
from dataclasses import dataclass

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from agent.hardware import TerminalFacts
from agent.identity import Identity
from agent.settings import ServerPin
from agent.upgrade.offer import OfferError, UpgradeOffer, UpgradeWait, parse_upgrade_answer
from batm_common import pairing_code
from batm_common.digits import decimal
from batm_common.hostaddr import ServerAddress
from batm_common.signing import HEADER_SERVER_TIME, b64url, sign_headers, unb64url

CONNECT_TIMEOUT = 3.0
REQUEST_TIMEOUT = 10.0
LONG_POLL_SECONDS = 25


class GateError(Exception):
    """Base of the adapter's errors; str() is a sentence for the screen's detail line."""


class GateUnreachableError(GateError):
    pass


class CertificateMismatchError(GateError):
    pass


class UnknownTerminalError(GateError):
    pass


class NotPairedError(GateError):
    pass


class RequestGoneError(GateError):
    pass


class UpgradeRequiredError(GateError):
    """The gate will not pair this version: `answer` is the next step or when to ask again."""

    def __init__(self, answer: UpgradeOffer | UpgradeWait):
        super().__init__("the server requires an upgrade before pairing")
        self.answer = answer


def upgrade_required(data: dict, spki_sha256: str) -> GateError:
    try:
        return UpgradeRequiredError(parse_upgrade_answer(data, spki_sha256))
    except OfferError as exc:
        return GateUnreachableError(f"the server's upgrade answer is malformed ({exc})")


@dataclass(frozen=True)
class PairingOffer:
    request_id: str
    code: str
    pin: ServerPin


def spki_der(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# OpenSSL's X509_V_FLAG_NO_CHECK_TIME (Python names no constant for it).
_NO_CHECK_TIME = 0x200000


def tls_context(pin: ServerPin | None) -> ssl.SSLContext:
    """TLS to the gate and the broker. Paired: the CA pinned at pairing, and the server's key
    pinned besides (GateClient._check_key). Certificate *validity times* are not checked for the
    pinned server: a Raspberry Pi has no RTC, and a clock 400 days behind makes every
    certificate look not yet valid (issue 13, item 6); the pins, not the clock, carry the trust."""
    if pin is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # trust on first use; the pairing code checks it
    else:
        context = ssl.create_default_context(cadata=pin.ca_pem)
        context.check_hostname = False  # terminals are pointed at IPs; the key pin is stricter
        context.verify_flags |= _NO_CHECK_TIME
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _peer_certificate(response: httpx.Response) -> x509.Certificate:
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        raise CertificateMismatchError("the server presented no TLS certificate")
    return x509.load_der_x509_certificate(der)


def _root_os_error(exc: BaseException) -> OSError | None:
    seen: set[int] = set()
    cursor: BaseException | None = exc
    while cursor is not None and id(cursor) not in seen:
        seen.add(id(cursor))
        if isinstance(cursor, OSError) and cursor.errno:
            return cursor
        cursor = cursor.__cause__ or cursor.__context__
    return None


_ERRNO_TEXT = {
    errno.ECONNREFUSED: "connection refused (is the server running, and is the port right?)",
    errno.EHOSTUNREACH: "no route to the server (check the network)",
    errno.ENETUNREACH: "network unreachable (check the network cable or Wi-Fi)",
    errno.ETIMEDOUT: "no answer (connection timed out)",
    errno.ECONNRESET: "the server closed the connection",
}


def _describe(exc: Exception) -> str:
    """A sentence a technician can act on, not an exception repr."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "no answer (connection timed out)"
    os_error = _root_os_error(exc)
    if os_error is not None and os_error.errno in _ERRNO_TEXT:
        return _ERRNO_TEXT[os_error.errno]
    if isinstance(exc, httpx.ConnectError) and "Name or service not known" in str(exc):
        return "host name not found (check the server address and DNS)"
    if isinstance(exc, httpx.TimeoutException):
        return "the server stopped answering (timed out)"
    if os_error is not None:
        return os_error.strerror or str(os_error)
    return str(exc) or type(exc).__name__


log = logging.getLogger(__name__)


class GateClient:
    """One client per (server, trust anchor); the daemon makes a new one when either changes."""

    # Seconds to add to this process's clock when signing: set from the server's time after a
    # clock_skew refusal, shared by every client of the process (one clock, one correction).
    clock_offset: float = 0.0

    def __init__(
        self, server: ServerAddress, identity: Identity, facts: TerminalFacts,
        pin: ServerPin | None,
    ):
        self.server = server
        self.identity = identity
        self.facts = facts
        self.pin = pin
        self._expected_spki_sha256 = pin.spki_sha256 if pin else None
        self._client = httpx.AsyncClient(
            base_url=f"https://{server.url_host}:{server.port}",
            verify=tls_context(pin),
            timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT),
            headers={"User-Agent": f"batm-agent/{facts.version}"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # ------------------------------------------------------------------ transport

    async def _request(
        self, method: str, path: str, body: dict | None = None, signed: bool = True,
        timeout: float | None = None, raw: tuple[bytes, str] | None = None,
    ) -> tuple[int, dict, x509.Certificate]:
        """`body` goes as JSON; `raw` = (bytes, content type) for anything else (log archives)."""
        if raw is not None:
            content, headers = raw[0], {"Content-Type": raw[1]}
        else:
            content = json.dumps(body).encode() if body is not None else b""
            headers = {"Content-Type": "application/json"} if body is not None else {}
        extra = {"timeout": httpx.Timeout(timeout, connect=CONNECT_TIMEOUT)} if timeout else {}
        response = await self._send(method, path, content, headers, signed, extra)
        if signed and response.status_code == 401 and self._correct_clock(response):
            # Signed again with the corrected clock: a Pi without RTC stays paired.
            response = await self._send(method, path, content, headers, signed, extra)
        cert = _peer_certificate(response)
        self._check_key(cert)
        try:
            data = response.json()
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        return response.status_code, data, cert

    def _correct_clock(self, response: httpx.Response) -> bool:
        """After a 401 clock_skew: take the server's time (over the pinned TLS channel) as
        the signing clock's offset; True when the request is worth signing again."""
        server_time = decimal(response.headers.get(HEADER_SERVER_TIME), max_digits=12)
        if server_time is None or self._expected_spki_sha256 is None:
            return False
        with contextlib.suppress(ValueError):
            if response.json().get("error") != "clock_skew":
                return False
        offset = server_time - time.time()
        log.warning("the server says this terminal's clock is %+.0f s off; signing with the "
                    "server's time from now on", offset)
        GateClient.clock_offset = offset
        return True

    async def _send(self, method: str, path: str, content: bytes, headers: dict,
                    signed: bool, extra: dict) -> httpx.Response:
        if signed:
            headers = headers | sign_headers(
                self.identity.private_key, self.facts.serial, method, path, content,
                now=time.time() + GateClient.clock_offset,
            )
        try:
            return await self._client.request(
                method, path, content=content, headers=headers, **extra
            )
        except httpx.ConnectError as exc:
            if isinstance(exc.__context__, ssl.SSLCertVerificationError) or (
                "CERTIFICATE_VERIFY_FAILED" in str(exc)
            ):
                raise CertificateMismatchError(
                    "the server's certificate is not signed by the CA this terminal paired with"
                ) from exc
            raise GateUnreachableError(_describe(exc)) from exc
        except httpx.HTTPError as exc:
            raise GateUnreachableError(_describe(exc)) from exc

    def _check_key(self, cert: x509.Certificate) -> None:
        if self._expected_spki_sha256 is None:
            return
        seen = hashlib.sha256(spki_der(cert)).hexdigest()
        if seen != self._expected_spki_sha256:
            raise CertificateMismatchError(
                f"the server's key changed (expected {self._expected_spki_sha256[:16]}…, "
                f"got {seen[:16]}…)"
            )

    @classmethod
    def _session_refusal(cls, status: int, data: dict) -> GateError:
        """Why a paired terminal's signed request was refused, as the error the machine needs."""
        if status == 404 and data.get("error") == "unknown_terminal":
            return UnknownTerminalError(data.get("message", "unknown terminal"))
        if status in (401, 403):
            return NotPairedError(data.get("message", "not paired"))
        return cls._unexpected(status, data)

    @staticmethod
    def _unexpected(status: int, data: dict) -> GateUnreachableError:
        message = data.get("message") or data.get("error") or "no explanation"
        return GateUnreachableError(f"the server answered {status}: {message}")

    # ------------------------------------------------------------------ pairing

    async def start_pairing(self) -> PairingOffer:
        """Hello, then reveal: returns the request and the code this terminal computed."""
        nonce = pairing_code.new_nonce()
        hello = {
            "serial": self.facts.serial,
            "version": self.facts.version,
            "hardware": self.facts.model,
            "identity_key": b64url(self.identity.public_raw),
            "commitment": pairing_code.commitment(nonce),
        }
        if self.facts.slot_hardware:
            hello["firmware_hardware"] = self.facts.slot_hardware
        status, data, cert = await self._request("POST", "/api/v1/hello", hello, signed=False)
        if status == 404 and data.get("error") == "unknown_terminal":
            raise UnknownTerminalError(data.get("message", "unknown terminal"))
        if status == 200 and data.get("status") == "upgrade_required":
            raise upgrade_required(data, hashlib.sha256(spki_der(cert)).hexdigest())
        if status != 200 or data.get("status") != "pairing":
            raise self._unexpected(status, data)
        try:
            request_id = str(data["request_id"])
            server_nonce = unb64url(data["server_nonce"])
            ca = x509.load_pem_x509_certificate(str(data["ca_cert"]).encode())
        except (KeyError, ValueError, TypeError) as exc:
            raise GateUnreachableError(f"the server's hello answer is malformed ({exc})") from exc
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise CertificateMismatchError(
                "the server's TLS certificate is not issued by the CA it sent"
            ) from exc
        server_spki = spki_der(cert)
        pin = ServerPin(
            ca_pem=ca.public_bytes(serialization.Encoding.PEM).decode(),
            spki_sha256=hashlib.sha256(server_spki).hexdigest(),
        )
        # From here on, every answer must come from the key the code is computed with.
        self._expected_spki_sha256 = pin.spki_sha256
        try:
            code = pairing_code.derive(self.identity.public_raw, server_spki, server_nonce, nonce)
        except ValueError as exc:
            raise GateUnreachableError(f"the server's hello answer is malformed ({exc})") from exc
        status, data, _ = await self._request(
            "POST", f"/api/v1/pairing/{request_id}/reveal", {"terminal_nonce": b64url(nonce)}
        )
        if status == 404:
            raise RequestGoneError("the pairing request expired")
        if status != 200:
            raise self._unexpected(status, data)
        return PairingOffer(request_id=request_id, code=code, pin=pin)

    async def poll_approval(self, request_id: str, wait: int = LONG_POLL_SECONDS) -> bool:
        """True once approved; False when the long poll ended without a decision."""
        status, data, _ = await self._request(
            "GET", f"/api/v1/pairing/{request_id}?wait={wait}", timeout=wait + REQUEST_TIMEOUT
        )
        if status == 404:
            raise RequestGoneError("the pairing request is no longer open")
        if status != 200:
            raise self._unexpected(status, data)
        return data.get("status") == "approved"

    # ------------------------------------------------------------------ paired session

    async def check_in(self, extra: dict | None = None) -> dict:
        """The answer ({"status": "paired", "broker"?: "HOST:PORT"}) when still paired;
        `extra` goes into the body (the VPN public key, docs/protocol.md § VPN)."""
        status, data, _ = await self._request(
            "POST", "/api/v1/checkin",
            {"version": self.facts.version, "master": True, **(extra or {})}
        )
        if status == 200 and data.get("status") == "paired":
            return data
        raise self._session_refusal(status, data)

    async def watch_session(self, wait: int = LONG_POLL_SECONDS) -> bool:
        """True while still paired (the long poll timed out); False once unpaired."""
        status, data, _ = await self._request(
            "GET", f"/api/v1/session?wait={wait}", timeout=wait + REQUEST_TIMEOUT
        )
        if status in (401, 403):
            return False
        if status != 200:
            raise self._unexpected(status, data)
        return data.get("status") != "unpaired"

    # ------------------------------------------------------------------ master service

    async def master_credentials(self, password: str) -> dict:
        """Hand the gate the MQTT password this terminal made; returns the broker answer."""
        status, data, _ = await self._request(
            "POST", "/api/v1/master/credentials", {"password": password}
        )
        if status == 200:
            return data
        raise self._session_refusal(status, data)

    async def upload_logs(self, command_id: str, archive: bytes) -> dict:
        """Upload a log archive for a retrieve_logs command (signed like every request)."""
        status, data, _ = await self._request(
            "POST", f"/api/v1/logs/{command_id}", raw=(archive, "application/gzip"), timeout=60
        )
        if status != 201:
            raise self._unexpected(status, data)
        return data
