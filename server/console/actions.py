"""What a console user does to terminals: create, approve, unpair, generate VPN configuration,
delete; each checked against their locations and role, and recorded in the audit log whatever
the outcome.

The work itself is the same service objects the admin API and the CLI use (pairing registry and
requests, the VPN service), built with the server's notifier: an approval or an unpair in the
console wakes the terminal's long-poll as fast as one on the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import sessionmaker

from server.console.audit import OK, AuditLog
from server.console.fleet import visible_terminal
from server.console.permissions import Action, Principal
from server.errors import ServiceError, bad_request
from server.pairing.registry import Registry
from server.pairing.requests import PairingRequests
from server.vpn.service import VpnService


@dataclass(frozen=True)
class Actor:
    """Who acts, and from which address (for the audit log)."""

    principal: Principal
    source: str | None


class Actions:
    def __init__(self, sessions: sessionmaker, audit: AuditLog, registry: Registry,
                 requests: PairingRequests, vpn: VpnService | None = None):
        self._sessions = sessions
        self._audit = audit
        self._registry = registry
        self._requests = requests
        self._vpn = vpn

    def audited(self, actor: Actor, action: Action, serial: str,
                 work: Callable[[], object], location: str | None = None,
                 detail: str | None = None):
        """Check the terminal is visible and the role allows `action`, do it, record it."""
        principal = actor.principal
        try:
            if action != Action.CREATE:
                with self._sessions() as session:
                    location = visible_terminal(session, principal, serial).location
            principal.require(action)
            result = work()
        except ServiceError as exc:
            self._audit.record(principal.name, action, exc.code, source=actor.source,
                               serial=serial, location=location,
                               detail=f"{detail + ': ' if detail else ''}{exc.message}")
            raise
        self._audit.record(principal.name, action, OK, source=actor.source, serial=serial,
                           location=location, detail=detail)
        return result

    def create(self, actor: Actor, serial: str, scenario: str, location: str | None) -> dict:
        if not isinstance(location, str) and location is not None:
            raise bad_request("location: must be text")

        def work() -> dict:
            if not actor.principal.sees(location):
                raise ServiceError(403, "forbidden_location",
                                   f"you do not work on location {location!r}; create the "
                                   "terminal in one of your locations" if location else
                                   "a terminal without a location is for users of every "
                                   "location; give one of your locations")
            return self._registry.create_terminal(serial, scenario, location)

        return self.audited(actor, Action.CREATE, serial, work, location=location,
                             detail=f"scenario {scenario}")

    def approve(self, actor: Actor, serial: str, code: str) -> dict:
        return self.audited(actor, Action.APPROVE, serial,
                             lambda: self._requests.approve(serial, code),
                             detail=f"code {code[:20]}")

    def unpair(self, actor: Actor, serial: str) -> dict:
        return self.audited(actor, Action.UNPAIR, serial, lambda: self._registry.unpair(serial))

    def generate_vpn(self, actor: Actor, serial: str) -> dict:
        def work() -> dict:
            if self._vpn is None:
                raise ServiceError(503, "vpn_unavailable", "this server has no VPN service")
            return self._vpn.generate(serial)

        return self.audited(actor, Action.GENERATE_VPN, serial, work)

    def vpn_config(self, actor: Actor, serial: str) -> dict:
        """A terminal's VPN configuration as a download (reading: not audited, but scoped)."""
        with self._sessions() as session:
            visible_terminal(session, actor.principal, serial)
        if self._vpn is None:
            raise ServiceError(503, "vpn_unavailable", "this server has no VPN service")
        return self._vpn.view(serial)

    def delete(self, actor: Actor, serial: str) -> None:
        self.audited(actor, Action.DELETE, serial,
                      lambda: self._registry.delete_terminal(serial))
