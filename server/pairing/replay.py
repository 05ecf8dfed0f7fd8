"""Replay protection for signed requests (issue 13, item 8; shared by replicas since issue 12).

A signed request used to be replayable for as long as its timestamp was in the ±300 s window.
Terminals now sign a random nonce with every request (batm_common.signing, v2), so no two
genuine requests share a signature; the server remembers every signature it accepted until its
timestamp leaves the window and refuses one it has seen. (A v1 request without a nonce is
caught the same way: Ed25519 signatures are deterministic.)

The memory is a table (db/guards.py seen_signatures), written in the request's own transaction:
every server process on the database refuses a replay that any of them accepted, and two
replicas given the same request at the same moment cannot both accept it (the second insert
waits for the first transaction and then finds the row).
"""

from __future__ import annotations

import datetime
import itertools

from sqlalchemy import delete
from sqlalchemy.orm import Session

from batm_common.signing import MAX_CLOCK_SKEW
from server.db.dialect import insert_unless_present
from server.db.guards import SeenSignature

EXPIRE_EVERY = 256  # accepted signatures between two sweeps of the forgotten ones (per process)
_accepted = itertools.count(1)


class ReplayGuard:
    """The replay memory as one transaction sees it."""

    def __init__(self, session: Session, now: datetime.datetime) -> None:
        self._session = session
        self._now = now

    def first_use(self, signature: str, timestamp: int) -> bool:
        """True the first time `signature` is presented; False for a replay."""
        # Remembered until its timestamp is out of the window for good.
        until = max(self._now.timestamp(), timestamp) + MAX_CLOCK_SKEW + 1
        inserted = self._session.execute(insert_unless_present(
            SeenSignature, ["signature"], signature=signature,
            forget_after=datetime.datetime.fromtimestamp(until, datetime.UTC),
        )).rowcount
        if inserted and next(_accepted) % EXPIRE_EVERY == 0:
            self._session.execute(
                delete(SeenSignature).where(SeenSignature.forget_after < self._now))
        return bool(inserted)
