"""Terminals and pairing requests as the JSON shapes of docs/protocol.md §3 (admin API, CLI
--json), and the one timestamp form those shapes use."""

from __future__ import annotations

import datetime

from batm_common.signing import fingerprint
from server.db.terminals import PairingRequest, Terminal
from server.pairing.states import TerminalState


def iso(moment: datetime.datetime | None) -> str | None:
    """ISO-8601 UTC, to the second: "2024-05-01T12:00:00Z"."""
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def terminal_view(terminal: Terminal) -> dict:
    paired = terminal.state == TerminalState.PAIRED and terminal.identity_key is not None
    return {
        "serial": terminal.serial,
        "scenario": terminal.scenario,
        "location": terminal.location,
        "state": terminal.state,
        "version": terminal.version,
        "paired_at": iso(terminal.paired_at),
        "last_seen": iso(terminal.last_seen),
        # Only the key that is paired now: an unpaired terminal's old key grants nothing.
        "identity_fingerprint": fingerprint(terminal.identity_key) if paired else None,
        "created_at": iso(terminal.created_at),
    }


def request_view(request: PairingRequest) -> dict:
    return {
        "serial": request.serial,
        "request_id": request.request_id,
        "code": request.code,
        "state": request.state,
        "peer": request.peer,
        "version": request.version,
        "created_at": iso(request.created_at),
    }
