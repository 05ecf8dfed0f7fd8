"""The master service's tables: what terminals report over MQTT and what the operator asked.

terminal_status   one row per terminal: the last status fields (the seed's monitoring page)
status_history    a row per status change (not per heartbeat)
events            terminal events, unique by the terminal-made event id: redelivery is a no-op
commands          remote commands and their results
archives          log archives terminals uploaded for retrieve_logs
"""

from __future__ import annotations

import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UTCDateTime


class TerminalStatus(Base):
    __tablename__ = "terminal_status"

    serial: Mapped[str] = mapped_column(
        ForeignKey("terminals.serial", ondelete="CASCADE"), primary_key=True
    )
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int | None]
    slot: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str | None] = mapped_column(String(64))
    screen: Mapped[str | None] = mapped_column(String(64))
    last_update: Mapped[str | None] = mapped_column(String(40))  # firmware, terminal's clock
    last_sync: Mapped[str | None] = mapped_column(String(40))
    last_sync_error: Mapped[str | None] = mapped_column(String(500))
    uptime: Mapped[float | None]
    vpn_handshake_age: Mapped[float | None]
    outbox_pending: Mapped[int | None]
    reported_at: Mapped[str | None] = mapped_column(String(40))  # "at" of the last status
    received_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)
    # What the server refused from this terminal (malformed or oversized payloads).
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    last_reject: Mapped[str | None] = mapped_column(String(500))


class StatusHistory(Base):
    __tablename__ = "status_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(
        ForeignKey("terminals.serial", ondelete="CASCADE"), index=True
    )
    received_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(Text)  # the status payload as JSON


class TerminalEvent(Base):
    __tablename__ = "events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(100))
    at: Mapped[str | None] = mapped_column(String(40))
    data: Mapped[str] = mapped_column(Text)  # JSON
    received_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)


class Command(Base):
    __tablename__ = "commands"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), index=True)
    command: Mapped[str] = mapped_column(String(32))
    args: Mapped[str] = mapped_column(Text)  # JSON
    issued_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(String(500))
    result: Mapped[str | None] = mapped_column(Text)  # JSON
    finished_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)


class Archive(Base):
    __tablename__ = "archives"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), index=True)
    command_id: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
