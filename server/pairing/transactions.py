"""One transaction of the pairing domain, and the rules every one of them applies first.

Every public operation of the registry, the pairing requests and the request authentication is
one database transaction. Notifications that wake long-polls are collected while it runs and sent
only after it committed, so a woken poll reads the new state.

Two rules hold in every transaction: an open request nobody polled for REQUEST_TTL is forgotten
(the terminal starts again with hello), and a terminal that is not paired takes its state from
its requests and its history.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from batm_common.clock import utcnow
from server.db.terminals import PairingRequest, Terminal
from server.notify import pairing_topic
from server.pairing.states import OPEN_REQUEST_STATES, TerminalState

log = logging.getLogger(__name__)

REQUEST_TTL = datetime.timedelta(minutes=15)


@dataclass
class Tx:
    """The open transaction: its session, its moment, and the topics to wake after commit."""

    session: Session
    now: datetime.datetime
    wake: list[str] = field(default_factory=list)


class Transactions:
    """Opens transactions on the database; shared by the domain's three parts."""

    def __init__(
        self,
        sessions: sessionmaker,
        *,
        notify: Callable[[str], None] | None = None,
        clock: Callable[[], datetime.datetime] = utcnow,
    ):
        self._sessions = sessions
        self._notify = notify or (lambda _topic: None)
        self.clock = clock

    @contextlib.contextmanager
    def begin(self) -> Iterator[Tx]:
        with self._sessions() as session, session.begin():
            tx = Tx(session, self.clock())
            expire_stale(tx)
            yield tx
        for topic in dict.fromkeys(tx.wake):
            self._notify(topic)


def expire_stale(tx: Tx) -> None:
    cutoff = tx.now - REQUEST_TTL
    stale = tx.session.scalars(
        select(PairingRequest).where(PairingRequest.last_poll < cutoff)
    ).all()
    for request in stale:
        log.info("pairing request of %s expired (no poll for 15 min)", request.serial)
        drop_request(tx, request)


def drop_request(tx: Tx, request: PairingRequest) -> None:
    serial = request.serial
    tx.session.delete(request)
    tx.session.flush()
    tx.wake.append(pairing_topic(request.request_id))
    terminal = tx.session.get(Terminal, serial)
    if terminal is not None:
        settle_state(tx, terminal)


def open_request(tx: Tx, serial: str) -> PairingRequest | None:
    return tx.session.scalars(
        select(PairingRequest)
        .where(PairingRequest.serial == serial)
        .where(PairingRequest.state.in_(OPEN_REQUEST_STATES))
        .order_by(PairingRequest.created_at.desc())
    ).first()


def settle_state(tx: Tx, terminal: Terminal) -> None:
    """Derive a non-paired terminal's state from its requests and history."""
    if terminal.state == TerminalState.PAIRED:
        return  # only approve, unpair and delete move a terminal out of paired
    if open_request(tx, terminal.serial) is not None:
        terminal.state = TerminalState.PAIRING
    elif terminal.identity_key:
        terminal.state = TerminalState.UNPAIRED
    else:
        terminal.state = TerminalState.NEVER_PAIRED
