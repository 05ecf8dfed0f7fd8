"""Who may do what where: the console's roles, the actions they allow, and a user's locations.

A user acts on the terminals of their locations only (the seed's "Outlet setup" permission);
anything outside them does not exist for that user (404, never 403, so nothing leaks). Within
their locations the role decides: a viewer reads, an operator also acts on terminals, an admin
also manages users. Whoever may act logs in with a TOTP code as well as a password.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from server.errors import ServiceError


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


class Action(StrEnum):
    """The state-changing actions of the console, as the audit log names them."""

    CREATE = "create"
    APPROVE = "approve"
    UNPAIR = "unpair"
    GENERATE_VPN = "generate_vpn"
    DELETE = "delete"
    RETRIEVE_LOGS = "retrieve_logs"
    RESET_DB = "reset_db"
    REBOOT = "reboot"
    FIRMWARE_ADD = "firmware_add"
    FIRMWARE_POLICY = "firmware_policy"
    LOGIN = "login"
    LOGOUT = "logout"
    USER_ADD = "user_add"
    USER_PASSWD = "user_passwd"
    USER_DISABLE = "user_disable"
    USER_LOCATIONS = "user_locations"
    TOKEN_CREATE = "token_create"
    FORM = "form"  # a page's state-changing request refused before it was read (CSRF)


TERMINAL_ACTIONS = frozenset({Action.CREATE, Action.APPROVE, Action.UNPAIR,
                              Action.GENERATE_VPN, Action.DELETE, Action.RETRIEVE_LOGS,
                              Action.RESET_DB, Action.REBOOT})
# The catalog and the policy are the whole fleet's: an admin of every location changes them.
FLEET_ACTIONS = frozenset({Action.FIRMWARE_ADD, Action.FIRMWARE_POLICY})
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: TERMINAL_ACTIONS | FLEET_ACTIONS,
    Role.OPERATOR: TERMINAL_ACTIONS,
    Role.VIEWER: frozenset(),
}
# Roles that can change something must prove a second factor at login.
NEEDS_TOTP = frozenset({Role.ADMIN, Role.OPERATOR})


@dataclass(frozen=True)
class Principal:
    """A logged-in user as the console's permission checks see them."""

    name: str
    role: Role
    locations: frozenset[str] | None  # None: every location, also terminals without one

    def sees(self, location: str | None) -> bool:
        if self.locations is None:
            return True
        return location is not None and location in self.locations

    def may(self, action: Action) -> bool:
        if action in FLEET_ACTIONS and self.locations is not None:
            return False
        return action in ROLE_ACTIONS[self.role]

    def require(self, action: Action) -> None:
        """403 when the role does not allow `action` (the terminal's visibility is apart)."""
        if action in FLEET_ACTIONS and self.role == Role.ADMIN and self.locations is not None:
            raise ServiceError(403, "forbidden", "firmware and the upgrade policy are the "
                               "whole fleet's: an admin of all locations changes them")
        if not self.may(action):
            raise ServiceError(403, "forbidden",
                               f"a {self.role} may not {action.replace('_', ' ')}; ask an "
                               "operator or an admin")


def parse_locations(text: str) -> list[str]:
    """L1,L2 as a sorted list without blanks or duplicates; a sentence when it is empty."""
    names = sorted({part.strip() for part in text.split(",") if part.strip()})
    if not names:
        raise ServiceError(400, "bad_request", "give at least one location, or --all-locations")
    for name in names:
        if len(name) > 200:
            raise ServiceError(400, "bad_request", "a location is at most 200 characters")
    return names


def location_list(locations: Iterable[str] | None) -> str:
    """For people: "all locations" or "L1, L2"."""
    return "all locations" if locations is None else ", ".join(sorted(locations))
