"""The operator console's tables: who may log in, their tokens and sessions, and the audit log.

console_users     one row per person: role, locations, argon2id password hash, TOTP secret,
                  disabled flag, the last TOTP step used (a code works once)
api_tokens        bearer tokens for the HTTPS API, stored as SHA-256 digests (never the token)
console_sessions  browser sessions, server-side: revocable, expiring after inactivity
login_failures    failed logins per account and per source address, and their lockouts
audit_log         every state-changing action and refusal; append-only (triggers refuse UPDATE
                  and DELETE, so not even the server's own code can rewrite history; made by
                  the migrations, from dialect.append_only_triggers)
"""

from __future__ import annotations

import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UTCDateTime


class ConsoleUser(Base):
    __tablename__ = "console_users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # a console.permissions.Role
    all_locations: Mapped[bool] = mapped_column(Boolean, default=False)
    locations: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of location names
    password_hash: Mapped[str] = mapped_column(String(200))
    totp_secret: Mapped[str | None] = mapped_column(String(64))  # base32; None for viewers
    totp_last_step: Mapped[int | None]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the token
    user: Mapped[str] = mapped_column(
        ForeignKey("console_users.name", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    last_used: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)


class ConsoleSession(Base):
    __tablename__ = "console_sessions"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie
    user: Mapped[str] = mapped_column(
        ForeignKey("console_users.name", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class LoginFailures(Base):
    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)  # "user:NAME", "addr:IP"
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)
    last_failure: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)  # a user, or "cli" on the host
    source: Mapped[str | None] = mapped_column(String(64))  # the client's address
    action: Mapped[str] = mapped_column(String(32), index=True)
    serial: Mapped[str | None] = mapped_column(String(64), index=True)
    location: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[str] = mapped_column(String(32))  # "ok" or the refusal's error code
    detail: Mapped[str | None] = mapped_column(String(500))

