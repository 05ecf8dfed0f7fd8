"""The terminals the operator registered, and their pairing requests.

terminals          one row per terminal: scenario, location, state (a pairing.states.TerminalState),
                   the identity key it paired with, its version
pairing_requests   open and approved requests (a pairing.states.RequestState): the keys, nonces
                   and code of one pairing exchange
"""

from __future__ import annotations

import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UTCDateTime


class Terminal(Base):
    __tablename__ = "terminals"

    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    scenario: Mapped[str] = mapped_column(String(1))
    location: Mapped[str | None] = mapped_column(String(200), index=True)  # console filters
    state: Mapped[str] = mapped_column(String(16))
    # The identity key the terminal paired with. It is kept after an unpair so that the
    # terminal's own signed requests can still be authenticated and told "unpaired".
    identity_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    version: Mapped[int | None]
    paired_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)


class PairingRequest(Base):
    __tablename__ = "pairing_requests"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    serial: Mapped[str] = mapped_column(
        ForeignKey("terminals.serial", ondelete="CASCADE"), index=True
    )
    identity_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    commitment: Mapped[str] = mapped_column(String(64))
    server_nonce: Mapped[bytes] = mapped_column(LargeBinary(32))
    terminal_nonce: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    code: Mapped[str | None] = mapped_column(String(9))
    peer: Mapped[str | None] = mapped_column(String(64))
    # What the terminal said in its hello; becomes the terminal's version on approval.
    version: Mapped[int | None]
    hardware: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    last_poll: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16))
