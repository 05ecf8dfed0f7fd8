"""The console's parts as one, as the server runs them and the console's web side takes them."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import sessionmaker

from batm_common.clock import utcnow
from server.console.actions import Actions
from server.console.audit import AuditLog
from server.console.firmware import FirmwareDesk
from server.console.fleet import Fleet
from server.console.lockouts import Lockouts
from server.console.remote import RemoteTools
from server.console.sessions import BrowserSessions
from server.console.tokens import Tokens
from server.console.users import Users
from server.firmware.gate import UpgradeGate
from server.master.service import MasterService
from server.pairing.registry import Registry
from server.pairing.requests import PairingRequests
from server.vpn.service import VpnService


@dataclass(frozen=True)
class ConsoleService:
    users: Users
    tokens: Tokens
    browser_sessions: BrowserSessions
    lockouts: Lockouts
    audit: AuditLog
    fleet: Fleet
    actions: Actions
    remote: RemoteTools
    firmware: FirmwareDesk


def console_service(sessions: sessionmaker, registry: Registry, requests: PairingRequests,
                    vpn: VpnService | None = None,
                    clock: Callable[[], datetime.datetime] = utcnow, *,
                    master: MasterService | None = None,
                    upgrades: UpgradeGate | None = None) -> ConsoleService:
    """Built from the same registry, requests, VPN, master service and upgrade gate as the
    admin API and the gate (one notifier)."""
    audit = AuditLog(sessions, clock)
    actions = Actions(sessions, audit, registry, requests, vpn)
    return ConsoleService(Users(sessions, clock), Tokens(sessions, clock),
                          BrowserSessions(sessions, clock), Lockouts(sessions, clock), audit,
                          Fleet(sessions, clock), actions, RemoteTools(sessions, actions, master),
                          FirmwareDesk(sessions, audit, upgrades))
