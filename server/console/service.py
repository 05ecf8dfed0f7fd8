"""The console's parts as one, as the server runs them and the console's web side takes them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import sessionmaker

from server.console.actions import Actions
from server.console.audit import AuditLog
from server.console.fleet import Fleet
from server.console.lockouts import Lockouts
from server.console.tokens import Tokens
from server.console.users import Users
from server.pairing.registry import Registry
from server.pairing.requests import PairingRequests
from server.vpn.service import VpnService


@dataclass(frozen=True)
class ConsoleService:
    users: Users
    tokens: Tokens
    lockouts: Lockouts
    audit: AuditLog
    fleet: Fleet
    actions: Actions


def console_service(sessions: sessionmaker, registry: Registry, requests: PairingRequests,
                    vpn: VpnService | None = None) -> ConsoleService:
    """Built from the same registry, requests and VPN objects as the admin API (one notifier)."""
    audit = AuditLog(sessions)
    return ConsoleService(Users(sessions), Tokens(sessions), Lockouts(sessions), audit,
                          Fleet(sessions), Actions(sessions, audit, registry, requests, vpn))
