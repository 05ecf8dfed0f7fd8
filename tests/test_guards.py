"""What the gate remembers against abuse, in the database (issue 12): token buckets for hellos
and the replay memory, on SQLite and PostgreSQL, with the domain's clock."""

from __future__ import annotations

import datetime

import pytest
from sqlalchemy import func, select

from server.db.engine import close_database, open_database
from server.db.guards import RateBucket, SeenSignature
from server.errors import ServiceError
from server.pairing import rate_limit, replay
from server.pairing.rate_limit import Rate, RateLimiter
from server.pairing.replay import ReplayGuard

T0 = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


@pytest.fixture
def sessions(tmp_path, database_url):
    made = open_database(tmp_path, database_url)
    yield made
    close_database(made)


def take(sessions, limiter: RateLimiter, key: str, seconds: float) -> None:
    with sessions() as session, session.begin():
        limiter.take(session, key, at(seconds))


def test_a_bucket_allows_its_burst_then_its_rate(sessions):
    limiter = RateLimiter(Rate(burst=3, per_second=0.5), "source", "this address")
    for _ in range(3):
        take(sessions, limiter, "192.0.2.7", 0)
    with pytest.raises(ServiceError) as refused:
        take(sessions, limiter, "192.0.2.7", 1)  # half a token back: not enough
    assert refused.value.status == 429 and "try again in 1 s" in refused.value.message
    take(sessions, limiter, "192.0.2.7", 2)  # one token back after 2 s
    take(sessions, limiter, "192.0.2.99", 2)  # another address, its own bucket


def test_kinds_keep_their_buckets_apart(sessions):
    per_source = RateLimiter(Rate(burst=1, per_second=0.01), "source", "this address")
    per_serial = RateLimiter(Rate(burst=1, per_second=0.01), "serial", "this serial")
    take(sessions, per_source, "X", 0)
    take(sessions, per_serial, "X", 0)  # the same key, another kind: not spent yet


def test_buckets_that_filled_up_again_are_swept(sessions, monkeypatch):
    monkeypatch.setattr(rate_limit, "SWEEP_EVERY", 1)
    limiter = RateLimiter(Rate(burst=2, per_second=1), "source", "this address")
    take(sessions, limiter, "old", 0)
    take(sessions, limiter, "new", 10)  # "old" is full again since t=2: forgotten
    with sessions() as session:
        assert session.scalars(select(RateBucket.key)).all() == ["source:new"]


def test_a_signature_is_accepted_once_and_forgotten_after_the_window(sessions, monkeypatch):
    monkeypatch.setattr(replay, "EXPIRE_EVERY", 1)
    timestamp = int(T0.timestamp())
    for now, signature, first in ((T0, "sig-a", True), (at(100), "sig-a", False),
                                  (at(1000), "sig-b", True)):
        with sessions() as session, session.begin():
            assert ReplayGuard(session, now).first_use(signature, timestamp) is first
    with sessions() as session:  # sig-a's window closed at +301 s: swept at sig-b's insert
        assert session.scalars(select(SeenSignature.signature)).all() == ["sig-b"]
        assert session.scalar(select(func.count()).select_from(SeenSignature)) == 1
