"""The screen ids (architecture §5): the `screen` field of the agent's screen model.

One definition for everyone: the agent derives a model with one of these ids, the display draws
each of them, `batm-agent wait` accepts them, and the HIL suite waits for them. The advanced
administration's screens are the display's own and share the `admin_` prefix.
"""

from __future__ import annotations

from enum import StrEnum


class ScreenId(StrEnum):
    SET_SERVER = "set_server"
    CONNECTING = "connecting"
    SERVER_UNREACHABLE = "server_unreachable"
    TERMINAL_UNPAIRED = "terminal_unpaired"
    UPGRADING = "upgrading"
    UNKNOWN_TERMINAL = "unknown_terminal"
    PAIRING_CODE = "pairing_code"
    VPN_ERROR = "vpn_error"
    CERTIFICATE_MISMATCH = "certificate_mismatch"
    IN_SERVICE = "in_service"


SCREEN_IDS: tuple[str, ...] = tuple(screen.value for screen in ScreenId)
ADMIN_PREFIX = "admin_"


def is_known_screen_id(screen_id: str) -> bool:
    """A contract screen, or any advanced-administration screen (admin_…)."""
    return screen_id in SCREEN_IDS or (
        screen_id.startswith(ADMIN_PREFIX) and len(screen_id) > len(ADMIN_PREFIX))


def unknown_screen_message(screen_id: str) -> str:
    return f"unknown screen id {screen_id!r}; valid ids: {', '.join(SCREEN_IDS)}, admin_*"
