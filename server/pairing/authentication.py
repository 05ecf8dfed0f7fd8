"""Request authentication: who signed a terminal's request, and what a paired terminal is told.

Terminals sign their requests with the identity key they paired with (batm_common.signing); the
gate hands the request over as a SignedRequest and these checks decide. A terminal that was
unpaired keeps its key on record, so its own signed requests are still recognised and answered
"unpaired" instead of an anonymous refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from batm_common import signing
from batm_common.signing import ClockSkewError, SignatureError
from server.db.terminals import Terminal
from server.errors import ServiceError, bad_signature, unknown_terminal
from server.pairing.registry import serial_problem
from server.pairing.replay import ReplayGuard
from server.pairing.states import SessionStatus, TerminalState
from server.pairing.transactions import Transactions, Tx

DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class SignedRequest:
    """What the gate hands over so that the server can check who signed a request."""

    method: str
    path_with_query: str
    body: bytes | None  # None: not read yet; `body_sha256` (its signed header) stands for it
    serial: str | None
    timestamp: str | None
    signature: str | None
    body_sha256: str | None = None
    nonce: str | None = None  # v2 signatures (replay protection: pairing/replay.py)

    def digest(self) -> str:
        if self.body is not None:
            return signing.body_digest(self.body)
        if not self.body_sha256 or not DIGEST.fullmatch(self.body_sha256):
            raise bad_signature(f"the request needs a {signing.HEADER_CONTENT_SHA256} header "
                                "(the body's SHA-256, 64 hex digits)")
        return self.body_sha256.lower()


def check_signature(signed: SignedRequest, key: bytes, serial: str,
                    replays: ReplayGuard | None = None) -> None:
    """Signed by `key` for terminal `serial` and not seen before, or 401 bad_signature saying
    what is wrong."""
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
            key, signed.method, signed.path_with_query, signed.digest(),
            signed.timestamp, signed.signature, nonce=signed.nonce,
        )
    except ClockSkewError as exc:
        # Not "bad signature": the terminal corrects its clock with our time and stays paired.
        raise ServiceError(401, "clock_skew", str(exc), headers={
            signing.HEADER_SERVER_TIME: str(exc.server_time)}) from exc
    except SignatureError as exc:
        raise bad_signature(str(exc)) from exc
    if replays is not None and not replays.first_use(signed.signature,
                                                     int(signed.timestamp)):
        raise bad_signature("this signed request was already used (a replay); every request "
                            "must be signed afresh")


def _not_paired(terminal: Terminal) -> ServiceError:
    return ServiceError(
        403, "not_paired",
        f"terminal {terminal.serial!r} is not paired (the operator unpaired it)",
    )


class Authenticator:
    """The gate's questions about a paired terminal's signed requests."""

    def __init__(self, transactions: Transactions):
        self._tx = transactions

    def _signed_terminal(self, tx: Tx, signed: SignedRequest) -> Terminal:
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
        check_signature(signed, terminal.identity_key, terminal.serial,
                        ReplayGuard(tx.session, tx.now))
        terminal.last_seen = tx.now
        return terminal

    def paired_terminal(self, signed: SignedRequest) -> str:
        """The serial of the paired terminal that signed (master credentials, log upload)."""
        with self._tx.begin() as tx:
            terminal = self._signed_terminal(tx, signed)
            if terminal.state != TerminalState.PAIRED:
                raise _not_paired(terminal)
            return terminal.serial

    def checkin(self, signed: SignedRequest, version: int) -> dict:
        with self._tx.begin() as tx:
            terminal = self._signed_terminal(tx, signed)
            if terminal.state != TerminalState.PAIRED:
                raise _not_paired(terminal)
            terminal.version = version
            return {"status": SessionStatus.PAIRED}

    def session_open(self, signed: SignedRequest) -> tuple[dict, bytes]:
        """Authenticate a session poll; returns its answer now and the key it was made with."""
        with self._tx.begin() as tx:
            terminal = self._signed_terminal(tx, signed)
            paired = terminal.state == TerminalState.PAIRED
            status = SessionStatus.PAIRED if paired else SessionStatus.UNPAIRED
            return {"status": status}, terminal.identity_key or b""

    def session_status(self, serial: str, key: bytes) -> dict:
        """Still paired with `key`? (Unpaired, deleted or re-keyed terminals are not.)"""
        with self._tx.begin() as tx:
            terminal = tx.session.get(Terminal, serial)
            paired = (
                terminal is not None and terminal.state == TerminalState.PAIRED
                and terminal.identity_key == key
            )
            return {"status": SessionStatus.PAIRED if paired else SessionStatus.UNPAIRED}
