"""The registry: the terminals the operator created, what makes a serial valid, and unpairing.

A terminal must be registered before it may pair (architecture §2: the operator creates it first).
Unpair and delete end its access at once: the long-polls of its session wake, and the `revoke`
hook (the server's MQTT and VPN revocation) runs after the transaction committed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.db.terminals import PairingRequest, Terminal
from server.errors import ServiceError, bad_request, unknown_terminal
from server.notify import pairing_topic, session_topic
from server.pairing.states import TerminalState
from server.pairing.transactions import Transactions, drop_request
from server.pairing.views import terminal_view

log = logging.getLogger(__name__)

SERIAL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SCENARIOS = ("A", "B")  # A: the master service through the VPN only; B: directly
MAX_LOCATION = 200


def serial_problem(serial: object) -> str | None:
    """None for a good serial, else a sentence saying what is wrong with it."""
    if not isinstance(serial, str):
        return "the serial must be text"
    if not serial:
        return "the serial is empty"
    if len(serial) > 64:
        return "the serial is longer than 64 characters"
    if not SERIAL_PATTERN.fullmatch(serial):
        return (
            f"the serial {serial!r} may hold only letters, digits, '.', '_' and '-', "
            "and must start with a letter or digit"
        )
    return None


def find_terminal(session: Session, serial: str) -> Terminal:
    """The registered terminal; 400 for a malformed serial, 404 for an unknown one."""
    problem = serial_problem(serial)
    if problem:
        raise bad_request(problem)
    terminal = session.get(Terminal, serial)
    if terminal is None:
        raise unknown_terminal(serial)
    return terminal


class Registry:
    def __init__(self, transactions: Transactions,
                 revoke: Callable[[str], object] | None = None):
        self._tx = transactions
        # Ends a terminal's MQTT and VPN access (server.app); called after the commit.
        self._revoke = revoke or (lambda _serial: None)

    def create_terminal(self, serial: str, scenario: str, location: str | None) -> dict:
        problem = serial_problem(serial)
        if problem:
            raise bad_request(problem)
        if scenario not in SCENARIOS:
            raise bad_request(f"the scenario must be 'A' or 'B', not {scenario!r}")
        if location is not None and (not isinstance(location, str)
                                     or len(location) > MAX_LOCATION):
            raise bad_request(f"the location must be text of at most {MAX_LOCATION} characters")
        with self._tx.begin() as tx:
            if tx.session.get(Terminal, serial) is not None:
                raise ServiceError(409, "exists", f"terminal {serial!r} already exists")
            terminal = Terminal(
                serial=serial, scenario=scenario, location=location or None,
                state=TerminalState.NEVER_PAIRED, created_at=tx.now,
            )
            tx.session.add(terminal)
            log.info("terminal %s created (scenario %s)", serial, scenario)
            return terminal_view(terminal)

    def list_terminals(self) -> list[dict]:
        with self._tx.begin() as tx:
            terminals = tx.session.scalars(select(Terminal).order_by(Terminal.serial)).all()
            return [terminal_view(t) for t in terminals]

    def get_terminal(self, serial: str) -> dict:
        with self._tx.begin() as tx:
            return terminal_view(find_terminal(tx.session, serial))

    def paired_serials(self) -> list[str]:
        with self._tx.begin() as tx:
            return list(tx.session.scalars(
                select(Terminal.serial).where(Terminal.state == TerminalState.PAIRED)).all())

    def unpair(self, serial: str) -> dict:
        with self._tx.begin() as tx:
            terminal = find_terminal(tx.session, serial)
            if terminal.state != TerminalState.PAIRED:
                raise ServiceError(
                    409, "not_paired", f"terminal {serial!r} is not paired (it is {terminal.state})"
                )
            terminal.state = TerminalState.UNPAIRED
            # Requests opened while it was paired go too: the operator is cutting this serial
            # off, and the genuine terminal starts afresh with a hello once it sees "unpaired".
            for request in tx.session.scalars(
                select(PairingRequest).where(PairingRequest.serial == serial)
            ).all():
                drop_request(tx, request)
            tx.wake.append(session_topic(serial))
            log.info("terminal %s unpaired", serial)
            view = terminal_view(terminal)
        self._revoke(serial)
        return view

    def delete_terminal(self, serial: str) -> None:
        with self._tx.begin() as tx:
            terminal = find_terminal(tx.session, serial)
            for request_id in tx.session.scalars(
                select(PairingRequest.request_id).where(PairingRequest.serial == serial)
            ).all():
                tx.wake.append(pairing_topic(request_id))
            tx.session.execute(delete(PairingRequest).where(PairingRequest.serial == serial))
            tx.session.delete(terminal)
            tx.wake.append(session_topic(serial))
            log.info("terminal %s deleted", serial)
        self._revoke(serial)
