"""Aware UTC time, and the one ISO 8601 form it is written in (protocol documents and databases)."""

from __future__ import annotations

import datetime


def utcnow() -> datetime.datetime:
    """Now, as an aware UTC datetime (naive times are ambiguous once stored)."""
    return datetime.datetime.now(datetime.UTC)


def iso_ms(moment: datetime.datetime) -> str:
    """`moment` as ISO 8601 with milliseconds and a Z, e.g. 2026-12-01T02:30:46.123Z."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
