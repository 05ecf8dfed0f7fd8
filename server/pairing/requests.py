"""Pairing requests: a terminal's hello opens one, it reveals its nonce, the operator approves.

The code both sides show is derived from both sides' keys as each sees them (batm_common.
pairing_code), so the operator's confirmation also proves nobody sits in between.

A hello for a *paired* terminal (one that lost its credentials) opens a request but leaves the
terminal paired until the operator approves: an unauthenticated hello must not be able to knock
a working terminal out of service.

Nor can it block a pairing (issue 13, item 2). Anybody who knows a serial may say hello, so a
serial holds several open requests at once, each bound to its identity key and its code; the
operator approves the one whose code matches the kiosk's screen, and the others go. A hello
replaces only the request of its own key (the terminal started again), or, when its source
address already holds MAX_OPEN_PER_SOURCE requests of this serial, that source's oldest; when
the serial holds MAX_OPEN_PER_SERIAL, the oldest request of the source holding most of them
goes. A stranger's hellos therefore crowd out their own requests, not the genuine terminal's.
Hellos are rate-limited per source address and per serial (pairing/rate_limit.py).
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from batm_common import pairing_code, signing
from server.db.dialect import storable_text
from server.db.firmware import min_pair_version
from server.db.terminals import PairingRequest, Terminal
from server.errors import ServiceError, bad_request, unknown_request
from server.notify import pairing_topic, session_topic
from server.pairing.authentication import SignedRequest, check_signature
from server.pairing.rate_limit import Rate, RateLimiter
from server.pairing.registry import serial_problem
from server.pairing.replay import ReplayGuard
from server.pairing.states import (
    OPEN_REQUEST_STATES,
    PairingStatus,
    RequestState,
    TerminalState,
)
from server.pairing.transactions import Transactions, Tx, drop_request, settle_state
from server.pairing.views import request_view, terminal_view

log = logging.getLogger(__name__)

MAX_OPEN_PER_SERIAL = 8
MAX_OPEN_PER_SOURCE = 2  # of one serial, from one source address
HELLOS_PER_SOURCE = Rate(burst=20, per_second=1 / 3)  # then 20 a minute
HELLOS_PER_SERIAL = Rate(burst=10, per_second=1 / 6)  # then 10 a minute
NO_PEER = "?"


class PairingRequests:
    def __init__(
        self,
        transactions: Transactions,
        *,
        server_spki: bytes | None = None,
        ca_pem: str | None = None,
        revoke: Callable[[str], object] | None = None,
        per_source: Rate = HELLOS_PER_SOURCE,
        per_serial: Rate = HELLOS_PER_SERIAL,
    ):
        self._tx = transactions
        self._per_source = RateLimiter(per_source, "source", "this address")
        self._per_serial = RateLimiter(per_serial, "serial", "anybody for this serial")
        self._server_spki = server_spki  # None when the CLI works on the database directly
        self._ca_pem = ca_pem
        # Ends the MQTT and VPN access of a key that a re-pairing replaced; after the commit.
        self._revoke = revoke or (lambda _serial: None)

    # ------------------------------------------------------------------ the terminal's side

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
        with self._tx.begin() as tx:
            terminal = tx.session.get(Terminal, serial)
            if terminal is None:
                raise ServiceError(
                    404, "unknown_terminal",
                    f"terminal {serial!r} is not registered on this server; "
                    "the operator must create it first",
                )
            _make_room(tx, serial, identity_key, peer)
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
                state=RequestState.AWAITING_CODE,
            )
            tx.session.add(request)
            tx.session.flush()
            settle_state(tx, terminal)
            log.info("hello from %s (version %s) at %s: pairing request opened", serial, version,
                     peer)
            return {
                "status": "pairing",  # the hello's answer (docs/protocol.md §2), not a state
                "request_id": request.request_id,
                "server_nonce": signing.b64url(request.server_nonce),
                "ca_cert": self._ca_pem,
            }

    def limit_hello(self, serial: str, peer: str | None) -> None:
        """429 `rate_limited` beyond the per-source or per-serial rate. The gate calls it first
        for every hello, before the upgrade answer of a too-old one (http/gate.py)."""
        with self._tx.begin() as tx:  # the buckets are shared by every server process
            self._per_source.take(tx.session, peer or NO_PEER, tx.now)
            self._per_serial.take(tx.session, serial, tx.now)

    def _signed_request(self, tx: Tx, request_id: str, signed: SignedRequest) -> PairingRequest:
        request = _get_request(tx, request_id)
        if request is None:
            raise unknown_request()
        check_signature(signed, request.identity_key, request.serial,
                        ReplayGuard(tx.session, tx.now))
        request.last_poll = tx.now
        return request

    def reveal(self, request_id: str, signed: SignedRequest, terminal_nonce: bytes) -> dict:
        if self._server_spki is None:
            raise RuntimeError("pairing needs the server's key to compute pairing codes")
        with self._tx.begin() as tx:
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
                request.state = RequestState.PENDING
                log.info("pairing request of %s: code revealed", request.serial)
            return {"status": _wire_status(request)}

    def pairing_status(self, request_id: str, signed: SignedRequest | None = None) -> dict:
        """The state of a request; with `signed`, also authenticates and counts as a poll."""
        with self._tx.begin() as tx:
            if signed is None:
                request = _get_request(tx, request_id)
                if request is None:
                    raise unknown_request()
            else:
                request = self._signed_request(tx, request_id, signed)
            return {"status": _wire_status(request)}

    # ------------------------------------------------------------------ the operator's side

    def list_pairing_requests(self) -> list[dict]:
        with self._tx.begin() as tx:
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
        with self._tx.begin() as tx:
            terminal = tx.session.get(Terminal, serial)
            if terminal is None:
                raise ServiceError(
                    404, "no_request", f"there is no terminal with serial {serial!r}"
                )
            candidates = open_requests(tx, serial)
            if not candidates:
                raise ServiceError(
                    404, "no_request", f"terminal {serial!r} has no open pairing request"
                )
            revealed = [r for r in candidates if r.code is not None]
            if not revealed:
                raise ServiceError(
                    409, "code_not_ready",
                    f"terminal {serial!r} has not revealed its pairing code yet; "
                    "wait until the terminal shows the code",
                )
            request = next((r for r in revealed if pairing_code.matches(r.code, typed)), None)
            if request is None:
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
            replaced = (terminal.state == TerminalState.PAIRED
                        and terminal.identity_key != request.identity_key)
            request.state = RequestState.APPROVED
            for other in candidates:  # the approved key is the terminal's: the rest go
                if other is not request:
                    drop_request(tx, other)
            terminal.state = TerminalState.PAIRED
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


def open_requests(tx: Tx, serial: str) -> list[PairingRequest]:
    """The serial's open requests, oldest first."""
    return list(tx.session.scalars(
        select(PairingRequest)
        .where(PairingRequest.serial == serial)
        .where(PairingRequest.state.in_(OPEN_REQUEST_STATES))
        .order_by(PairingRequest.created_at, PairingRequest.request_id)
    ).all())


def _make_room(tx: Tx, serial: str, identity_key: bytes, peer: str | None) -> None:
    """Drop what a new hello replaces (see the module doc): its key's earlier request, its
    source's oldest beyond MAX_OPEN_PER_SOURCE, the fullest source's oldest beyond
    MAX_OPEN_PER_SERIAL."""
    for earlier in tx.session.scalars(
        select(PairingRequest).where(PairingRequest.serial == serial)
        .where(PairingRequest.identity_key == identity_key)
    ).all():
        drop_request(tx, earlier)
    source = peer or NO_PEER
    mine = [r for r in open_requests(tx, serial) if (r.peer or NO_PEER) == source]
    for oldest in mine[:max(0, len(mine) - MAX_OPEN_PER_SOURCE + 1)]:
        drop_request(tx, oldest)
    requests = open_requests(tx, serial)
    while len(requests) >= MAX_OPEN_PER_SERIAL:
        fullest, _ = Counter(r.peer or NO_PEER for r in requests).most_common(1)[0]
        drop_request(tx, next(r for r in requests if (r.peer or NO_PEER) == fullest))
        requests = open_requests(tx, serial)


def _wire_status(request: PairingRequest) -> PairingStatus:
    # The terminal only needs to know whether the operator approved; "awaiting_code" is an
    # operator-side detail.
    if request.state == RequestState.APPROVED:
        return PairingStatus.APPROVED
    return PairingStatus.PENDING


def _get_request(tx: Tx, request_id: str) -> PairingRequest | None:
    """The request with this id (a path parameter, anybody's): None when there is none, also
    for an id no database could hold."""
    if not storable_text(request_id):
        return None
    return tx.session.get(PairingRequest, request_id)
