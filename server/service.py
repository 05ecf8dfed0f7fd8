"""The server's operations, shared by the gate, the admin API and the CLI (when no server runs).

Every public method is one database transaction. Methods return the JSON shapes of
docs/protocol.md (see views.py) and refuse with ServiceError; notifications that wake long-polls
are sent only after the transaction committed, so a woken poll reads the new state.

Terminal states: never_paired → pairing (a request is open) → paired → unpaired → pairing → …
A hello for a *paired* terminal (one that lost its credentials) opens a request but leaves the
terminal paired until the operator approves: an unauthenticated hello must not be able to knock
a working terminal out of service.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from batm_common import pairing_code, signing
from batm_common.clock import utcnow
from batm_common.signing import SignatureError
from server.db import (
    OPEN_REQUEST_STATES,
    SCENARIOS,
    PairingRequest,
    Terminal,
    serial_problem,
)
from server.errors import (
    ServiceError,
    bad_request,
    bad_signature,
    unknown_request,
    unknown_terminal,
)
from server.firmware_db import min_pair_version
from server.notify import pairing_topic, session_topic
from server.views import request_view, terminal_view

log = logging.getLogger(__name__)

# An open request nobody polled for this long is forgotten; the terminal starts again with hello.
REQUEST_TTL = datetime.timedelta(minutes=15)
MAX_LOCATION = 200


@dataclass(frozen=True)
class SignedRequest:
    """What the gate hands over so the service can check who signed a request."""

    method: str
    path_with_query: str
    body: bytes
    serial: str | None
    timestamp: str | None
    signature: str | None


@dataclass
class _Tx:
    session: Session
    now: datetime.datetime
    wake: list[str] = field(default_factory=list)


class Service:
    def __init__(
        self,
        sessions: sessionmaker,
        *,
        server_spki: bytes | None = None,
        ca_pem: str | None = None,
        notify: Callable[[str], None] | None = None,
        clock: Callable[[], datetime.datetime] = utcnow,
        revoke: Callable[[str], object] | None = None,
    ):
        self._sessions = sessions
        # Ends a terminal's MQTT access (server.master); called after the unpair committed.
        self._revoke = revoke or (lambda _serial: None)
        self._server_spki = server_spki  # None when the CLI works on the database directly
        self._ca_pem = ca_pem
        self._notify = notify or (lambda _topic: None)
        self._clock = clock

    @contextlib.contextmanager
    def _tx(self) -> Iterator[_Tx]:
        with self._sessions() as session, session.begin():
            tx = _Tx(session, self._clock())
            self._expire_stale(tx)
            yield tx
        for topic in dict.fromkeys(tx.wake):
            self._notify(topic)

    # ------------------------------------------------------------------ shared steps

    def _expire_stale(self, tx: _Tx) -> None:
        cutoff = tx.now - REQUEST_TTL
        stale = tx.session.scalars(
            select(PairingRequest).where(PairingRequest.last_poll < cutoff)
        ).all()
        for request in stale:
            log.info("pairing request of %s expired (no poll for 15 min)", request.serial)
            self._drop_request(tx, request)

    def _drop_request(self, tx: _Tx, request: PairingRequest) -> None:
        serial = request.serial
        tx.session.delete(request)
        tx.session.flush()
        tx.wake.append(pairing_topic(request.request_id))
        terminal = tx.session.get(Terminal, serial)
        if terminal is not None:
            self._settle_state(tx, terminal)

    def _open_request(self, tx: _Tx, serial: str) -> PairingRequest | None:
        return tx.session.scalars(
            select(PairingRequest)
            .where(PairingRequest.serial == serial)
            .where(PairingRequest.state.in_(OPEN_REQUEST_STATES))
            .order_by(PairingRequest.created_at.desc())
        ).first()

    def _settle_state(self, tx: _Tx, terminal: Terminal) -> None:
        """Derive a non-paired terminal's state from its requests and history."""
        if terminal.state == "paired":
            return  # only approve, unpair and delete move a terminal out of paired
        if self._open_request(tx, terminal.serial) is not None:
            terminal.state = "pairing"
        else:
            terminal.state = "unpaired" if terminal.identity_key else "never_paired"

    def _terminal(self, tx: _Tx, serial: str) -> Terminal:
        problem = serial_problem(serial)
        if problem:
            raise bad_request(problem)
        terminal = tx.session.get(Terminal, serial)
        if terminal is None:
            raise unknown_terminal(serial)
        return terminal

    @staticmethod
    def _check_signature(signed: SignedRequest, key: bytes, serial: str) -> None:
        if not signed.timestamp or not signed.signature:
            raise bad_signature(
                f"the request is not signed (it needs {signing.HEADER_TIMESTAMP} and "
                f"{signing.HEADER_SIGNATURE} headers)"
            )
        if not signed.serial:
            raise bad_signature(f"the request has no {signing.HEADER_SERIAL} header")
        if signed.serial != serial:
            raise bad_signature(f"the request is signed for terminal {signed.serial!r}")
        try:
            signing.verify(
                key, signed.method, signed.path_with_query, signed.body,
                signed.timestamp, signed.signature,
            )
        except SignatureError as exc:
            raise bad_signature(str(exc)) from exc

    # ------------------------------------------------------------------ admin operations

    def create_terminal(self, serial: str, scenario: str, location: str | None) -> dict:
        problem = serial_problem(serial)
        if problem:
            raise bad_request(problem)
        if scenario not in SCENARIOS:
            raise bad_request(f"the scenario must be 'A' or 'B', not {scenario!r}")
        if location is not None and (not isinstance(location, str) or len(location) > 200):
            raise bad_request(f"the location must be text of at most {MAX_LOCATION} characters")
        with self._tx() as tx:
            if tx.session.get(Terminal, serial) is not None:
                raise ServiceError(409, "exists", f"terminal {serial!r} already exists")
            terminal = Terminal(
                serial=serial, scenario=scenario, location=location or None,
                state="never_paired", created_at=tx.now,
            )
            tx.session.add(terminal)
            log.info("terminal %s created (scenario %s)", serial, scenario)
            return terminal_view(terminal)

    def list_terminals(self) -> list[dict]:
        with self._tx() as tx:
            terminals = tx.session.scalars(select(Terminal).order_by(Terminal.serial)).all()
            return [terminal_view(t) for t in terminals]

    def get_terminal(self, serial: str) -> dict:
        with self._tx() as tx:
            return terminal_view(self._terminal(tx, serial))

    def unpair(self, serial: str) -> dict:
        with self._tx() as tx:
            terminal = self._terminal(tx, serial)
            if terminal.state != "paired":
                raise ServiceError(
                    409, "not_paired", f"terminal {serial!r} is not paired (it is {terminal.state})"
                )
            terminal.state = "unpaired"
            # Requests opened while it was paired go too: the operator is cutting this serial
            # off, and the genuine terminal starts afresh with a hello once it sees "unpaired".
            for request in tx.session.scalars(
                select(PairingRequest).where(PairingRequest.serial == serial)
            ).all():
                self._drop_request(tx, request)
            tx.wake.append(session_topic(serial))
            log.info("terminal %s unpaired", serial)
            view = terminal_view(terminal)
        self._revoke(serial)
        return view

    def delete_terminal(self, serial: str) -> None:
        with self._tx() as tx:
            terminal = self._terminal(tx, serial)
            for request_id in tx.session.scalars(
                select(PairingRequest.request_id).where(PairingRequest.serial == serial)
            ).all():
                tx.wake.append(pairing_topic(request_id))
            tx.session.execute(delete(PairingRequest).where(PairingRequest.serial == serial))
            tx.session.delete(terminal)
            tx.wake.append(session_topic(serial))
            log.info("terminal %s deleted", serial)
        self._revoke(serial)

    def list_pairing_requests(self) -> list[dict]:
        with self._tx() as tx:
            requests = tx.session.scalars(
                select(PairingRequest)
                .where(PairingRequest.state.in_(OPEN_REQUEST_STATES))
                .order_by(PairingRequest.created_at, PairingRequest.serial)
            ).all()
            return [request_view(r) for r in requests]

    def approve(self, serial: str, code: str) -> dict:
        problem = serial_problem(serial)
        if problem:
            raise bad_request(problem)
        if not isinstance(code, str):
            raise bad_request("code: the pairing code must be text like ABCD-1234")
        try:
            typed = pairing_code.normalize(code)
        except pairing_code.CodeFormatError as exc:
            raise bad_request(f"code: {exc}") from exc
        with self._tx() as tx:
            terminal = tx.session.get(Terminal, serial)
            if terminal is None:
                raise ServiceError(
                    404, "no_request", f"there is no terminal with serial {serial!r}"
                )
            request = self._open_request(tx, serial)
            if request is None:
                raise ServiceError(
                    404, "no_request", f"terminal {serial!r} has no open pairing request"
                )
            if request.state == "awaiting_code" or request.code is None:
                raise ServiceError(
                    409, "code_not_ready",
                    f"terminal {serial!r} has not revealed its pairing code yet; "
                    "wait until the terminal shows the code",
                )
            if not pairing_code.matches(request.code, typed):
                raise ServiceError(
                    409, "code_mismatch",
                    f"the code {typed} does not match the pairing request of terminal {serial!r}; "
                    "compare it with the code on the terminal's screen (a different code there "
                    "can mean someone is intercepting the connection)",
                )
            minimum = min_pair_version(tx.session)
            if request.version is not None and request.version < minimum:
                raise ServiceError(
                    409, "version_too_old",
                    f"terminal {serial!r} runs version {request.version}, older than the minimum "
                    f"version to pair ({minimum}); the gate upgrades it when it says hello again",
                )
            replaced = terminal.state == "paired" and terminal.identity_key != request.identity_key
            request.state = "approved"
            terminal.state = "paired"
            terminal.identity_key = request.identity_key
            terminal.paired_at = tx.now
            if request.version is not None:
                terminal.version = request.version
            tx.wake.append(pairing_topic(request.request_id))
            # A live session of a replaced key must end now: that key is no longer paired.
            tx.wake.append(session_topic(serial))
            log.info(
                "terminal %s paired (key %s%s)", serial,
                signing.fingerprint(request.identity_key), ", replacing the old key" if replaced
                else "",
            )
            view = terminal_view(terminal)
        if replaced:
            self._revoke(serial)  # the old key's MQTT credentials go with it
        return view

    # ------------------------------------------------------------------ gate operations

    def hello(
        self, serial: str, version: int, hardware: str, identity_key: bytes, commitment: str,
        peer: str | None,
    ) -> dict:
        problem = serial_problem(serial)
        if problem:
            raise bad_request(f"serial: {problem}")
        try:
            Ed25519PublicKey.from_public_bytes(identity_key)
        except ValueError as exc:
            raise bad_request("identity_key: not a raw 32-byte Ed25519 public key") from exc
        with self._tx() as tx:
            terminal = tx.session.get(Terminal, serial)
            if terminal is None:
                raise ServiceError(
                    404, "unknown_terminal",
                    f"terminal {serial!r} is not registered on this server; "
                    "the operator must create it first",
                )
            for earlier in tx.session.scalars(
                select(PairingRequest).where(PairingRequest.serial == serial)
            ).all():
                self._drop_request(tx, earlier)
            request = PairingRequest(
                request_id=secrets.token_urlsafe(18),
                serial=serial,
                identity_key=identity_key,
                commitment=commitment.lower(),
                server_nonce=pairing_code.new_nonce(),
                peer=peer,
                version=version,
                hardware=hardware,
                created_at=tx.now,
                last_poll=tx.now,
                state="awaiting_code",
            )
            tx.session.add(request)
            tx.session.flush()
            self._settle_state(tx, terminal)
            log.info("hello from %s (version %s) at %s: pairing request opened", serial, version,
                     peer)
            return {
                "status": "pairing",
                "request_id": request.request_id,
                "server_nonce": signing.b64url(request.server_nonce),
                "ca_cert": self._ca_pem,
            }

    def _signed_request(self, tx: _Tx, request_id: str, signed: SignedRequest) -> PairingRequest:
        request = tx.session.get(PairingRequest, request_id)
        if request is None:
            raise unknown_request()
        self._check_signature(signed, request.identity_key, request.serial)
        request.last_poll = tx.now
        return request

    def reveal(self, request_id: str, signed: SignedRequest, terminal_nonce: bytes) -> dict:
        if self._server_spki is None:
            raise RuntimeError("the service needs the server's key to compute pairing codes")
        with self._tx() as tx:
            request = self._signed_request(tx, request_id, signed)
            if not pairing_code.verify_commitment(request.commitment, terminal_nonce):
                raise ServiceError(
                    400, "commitment_mismatch",
                    "the terminal nonce does not match the commitment sent in the hello",
                )
            if request.code is None:
                request.terminal_nonce = terminal_nonce
                # The code from the key the server *presents* and the key it *received*: an
                # interceptor on either side changes one of them.
                request.code = pairing_code.derive(
                    request.identity_key, self._server_spki, request.server_nonce, terminal_nonce
                )
                request.state = "pending"
                log.info("pairing request of %s: code revealed", request.serial)
            return {"status": _wire_status(request)}

    def pairing_status(self, request_id: str, signed: SignedRequest | None = None) -> dict:
        """The state of a request; with `signed`, also authenticates and counts as a poll."""
        with self._tx() as tx:
            if signed is None:
                request = tx.session.get(PairingRequest, request_id)
                if request is None:
                    raise unknown_request()
            else:
                request = self._signed_request(tx, request_id, signed)
            return {"status": _wire_status(request)}

    def _session_terminal(self, tx: _Tx, signed: SignedRequest) -> Terminal:
        if not signed.serial:
            raise bad_signature(f"the request has no {signing.HEADER_SERIAL} header")
        problem = serial_problem(signed.serial)
        if problem:
            raise bad_signature(f"{signing.HEADER_SERIAL}: {problem}")
        terminal = tx.session.get(Terminal, signed.serial)
        if terminal is None:
            raise unknown_terminal(signed.serial)
        if terminal.identity_key is None:
            raise ServiceError(403, "not_paired", f"terminal {terminal.serial!r} is not paired")
        self._check_signature(signed, terminal.identity_key, terminal.serial)
        terminal.last_seen = tx.now
        return terminal

    def paired_serials(self) -> list[str]:
        with self._tx() as tx:
            return list(tx.session.scalars(
                select(Terminal.serial).where(Terminal.state == "paired")).all())

    def paired_terminal(self, signed: SignedRequest) -> str:
        """Authenticate a paired terminal's signed request (master credentials, log upload)."""
        with self._tx() as tx:
            terminal = self._session_terminal(tx, signed)
            if terminal.state != "paired":
                raise ServiceError(
                    403, "not_paired",
                    f"terminal {terminal.serial!r} is not paired (the operator unpaired it)",
                )
            return terminal.serial

    def checkin(self, signed: SignedRequest, version: int) -> dict:
        with self._tx() as tx:
            terminal = self._session_terminal(tx, signed)
            if terminal.state != "paired":
                raise ServiceError(
                    403, "not_paired",
                    f"terminal {terminal.serial!r} is not paired (the operator unpaired it)",
                )
            terminal.version = version
            return {"status": "paired"}

    def session_open(self, signed: SignedRequest) -> tuple[dict, bytes]:
        """Authenticate a session poll; returns its answer now and the key it was made with."""
        with self._tx() as tx:
            terminal = self._session_terminal(tx, signed)
            status = "paired" if terminal.state == "paired" else "unpaired"
            return {"status": status}, terminal.identity_key or b""

    def session_status(self, serial: str, key: bytes) -> dict:
        """Still paired with `key`? (Unpaired, deleted or re-keyed terminals are not.)"""
        with self._tx() as tx:
            terminal = tx.session.get(Terminal, serial)
            paired = (
                terminal is not None and terminal.state == "paired"
                and terminal.identity_key == key
            )
            return {"status": "paired" if paired else "unpaired"}


def _wire_status(request: PairingRequest) -> str:
    # The terminal only needs to know whether the operator approved; "awaiting_code" is an
    # operator-side detail.
    return "approved" if request.state == "approved" else "pending"
