"""The control socket's commands (docs/protocol.md §4): what a client may send the agent.

One definition: the agent's control server answers these, and its clients (the `batm-agent` CLI,
the serial console, the display, the rig) send them. A request is {"cmd": <name>, …}; every
command named `admin_…` goes to the advanced administration, which needs a session from
admin_unlock for all but admin_state and admin_unlock.
"""

from __future__ import annotations

from enum import StrEnum


class ControlCommand(StrEnum):
    PING = "ping"                  # {} → ok
    STATUS = "status"              # {} → status
    SCREEN = "screen"              # {} → the screen model shown now
    SET_SERVER = "set_server"      # {address} → server ("HOST:PORT")
    SUBSCRIBE = "subscribe"        # {} → the screen now, then {"event": "screen"} on every change
    RECORD_EVENT = "record_event"  # {type, data} → id (stored, then sent to the master service)


ADMIN_PREFIX = "admin_"


class AdminCommand(StrEnum):
    STATE = "admin_state"            # {} → locked_for, must_change (no session needed)
    UNLOCK = "admin_unlock"          # {pin} → session, must_change | error, locked_for
    SET_PIN = "admin_set_pin"        # {session, old?, new} ("old" not needed while must_change)
    INFO = "admin_info"              # {session} → network, vpn, terminal
    SET_SERVER = "admin_set_server"  # {session, address} → server | error, reason
    REBOOT = "admin_reboot"          # {session} → ok, then the terminal reboots
    TOUCH = "admin_touch"            # {session}: keeps the session alive while someone types
    LOCK = "admin_lock"              # {session} → ok; the session is gone
