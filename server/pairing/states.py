"""The states a terminal and a pairing request go through: the pairing domain's one vocabulary.

A terminal: never_paired → pairing (a request is open) → paired → unpaired → pairing → …
A request:  awaiting_code (hello) → pending (the terminal revealed its nonce: the code exists)
            → approved (the operator confirmed the code)
Told to the terminal (docs/protocol.md §2), narrower than the states above:
  a pairing poll:  pending (awaiting_code or pending) or approved
  a session:       paired, or unpaired (which also covers a terminal that is pairing again: the
                   key it signs with is not the paired one)

The values are what the database stores and the APIs send; StrEnum members compare equal to
them, so rows read back as plain strings still match.
"""

from __future__ import annotations

from enum import StrEnum


class TerminalState(StrEnum):
    NEVER_PAIRED = "never_paired"
    PAIRING = "pairing"
    PAIRED = "paired"
    UNPAIRED = "unpaired"


class RequestState(StrEnum):
    AWAITING_CODE = "awaiting_code"
    PENDING = "pending"
    APPROVED = "approved"


OPEN_REQUEST_STATES = (RequestState.AWAITING_CODE, RequestState.PENDING)


class PairingStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"


class SessionStatus(StrEnum):
    PAIRED = "paired"
    UNPAIRED = "unpaired"
