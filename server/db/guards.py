"""What the gate remembers to refuse abuse, kept in the database so that every server process on
it (replicas behind a load balancer) refuses alike.

seen_signatures   every signed request's signature the server accepted, until its timestamp has
                  left the clock-skew window: a second use is a replay (pairing/replay.py)
rate_buckets      token buckets of the unauthenticated hello, per source address and per serial
                  (pairing/rate_limit.py)
"""

from __future__ import annotations

import datetime

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UTCDateTime


class SeenSignature(Base):
    __tablename__ = "seen_signatures"

    signature: Mapped[str] = mapped_column(String(100), primary_key=True)  # base64url Ed25519
    forget_after: Mapped[datetime.datetime] = mapped_column(UTCDateTime, index=True)


class RateBucket(Base):
    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)  # "source:IP", "serial:S"
    tokens: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, index=True)  # last refill
