"""The advanced administration's backend: the control socket's `admin_*` commands.

The display is an unprivileged UI; the PIN, its lockout and the sessions live here, in the agent,
so that a display restart (or a fake display on the control socket) gains nothing.
agent/control/server.py routes every command whose name starts with "admin_" to
AdminService.handle(cmd, message); the commands and their fields are listed in
batm_common/control_commands.py (AdminCommand).

Failures are {"ok": false, "error": sentence, "code": one of wrong_pin, locked, must_change,
session, invalid_pin, invalid_address, bad_request, failed}. One session at a time (one screen):
a new unlock ends the previous one. A session ends after `idle_timeout` seconds without a
command. While the factory PIN is in use a session may only change the PIN (or lock).

Everything here is synchronous and runs in the daemon's loop: the slowest step is one scrypt
(~0.2 s on a Pi 4), and the lockout bounds how often it can be asked for.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.admin.network import read_network
from agent.admin.pin import PinError, PinFileDamaged, PinStore
from agent.hardware import active_slot
from agent.restart import reboot_terminal
from batm_common.control_commands import ADMIN_PREFIX, AdminCommand
from batm_common.hostaddr import AddressError

log = logging.getLogger("batm-agent.admin")

IDLE_TIMEOUT = 90.0  # the display leaves after 60 s without touches and locks explicitly
SESSION_FREE = (AdminCommand.STATE, AdminCommand.UNLOCK)
WHILE_MUST_CHANGE = (AdminCommand.SET_PIN, AdminCommand.LOCK, AdminCommand.TOUCH)


def _wrong_pin(attempt) -> dict[str, Any]:
    """The refusal of a failed PinStore.verify: locked out, or how many tries are left."""
    if attempt.locked_for:
        log.warning("advanced administration locked for %.0f s after wrong PINs",
                    attempt.locked_for)
        return _fail("locked", f"too many wrong PINs: locked for "
                     f"{attempt.locked_for:.0f} s", locked_for=round(attempt.locked_for, 1))
    log.warning("wrong advanced-administration PIN (%d left before a lockout)",
                attempt.tries_left)
    return _fail("wrong_pin", f"wrong PIN ({attempt.tries_left} "
                 f"{'try' if attempt.tries_left == 1 else 'tries'} left)",
                 tries_left=attempt.tries_left, locked_for=0)


def _fail(code: str, error: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "code": code, "error": error, **extra}


class AdminService:
    def __init__(
        self,
        state_dir: Path | str,
        *,
        status: Callable[[], dict],
        set_server: Callable[[str], str],
        reboot: Callable[[], None] | None = None,
        slots_dir: Path | str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        idle_timeout: float = IDLE_TIMEOUT,
        network: Callable[[], dict] | None = None,
        vpn: Callable[[], dict] | None = None,
        scrypt_params: dict | None = None,
    ) -> None:
        self.pins = PinStore(state_dir, clock=wall_clock, scrypt_params=scrypt_params)
        # Read once at start, so a damaged PIN file is quarantined and reported to the operator
        # now, not when a technician first needs the admin at the kiosk.
        with contextlib.suppress(PinFileDamaged):
            self.pins.load()
        self.status = status
        self.set_server = set_server
        self.reboot = reboot or reboot_terminal
        self.slots_dir = Path(slots_dir) if slots_dir else None
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.network = network or read_network
        self.vpn = vpn or (lambda: {"state": "not configured"})
        self._session: str | None = None
        self._session_seen = 0.0
        self._session_must_change = False
        self._handlers: dict[str, Callable[[dict], dict]] = {
            AdminCommand.STATE: self._cmd_state, AdminCommand.UNLOCK: self._cmd_unlock,
            AdminCommand.SET_PIN: self._cmd_set_pin, AdminCommand.INFO: self._cmd_info,
            AdminCommand.SET_SERVER: self._cmd_set_server, AdminCommand.REBOOT: self._cmd_reboot,
            AdminCommand.TOUCH: self._cmd_touch, AdminCommand.LOCK: self._cmd_lock,
        }

    # -- dispatch ---------------------------------------------------------------------------

    def handle(self, cmd: str, message: dict[str, Any]) -> dict[str, Any]:
        handler = self._handlers.get(cmd)
        if not cmd.startswith(ADMIN_PREFIX) or handler is None:
            known = ", ".join(sorted(self._handlers))
            return _fail("bad_request", f"unknown command {cmd!r} (admin commands: {known})")
        try:
            if cmd not in SESSION_FREE:
                problem = self._check_session(message.get("session"), cmd)
                if problem is not None:
                    return problem
            return handler(message)
        except PinFileDamaged as exc:
            log.error("%s", exc)
            return _fail("failed", str(exc))

    def authorize(self, pin: object) -> dict[str, Any] | None:
        """None when `pin` is the admin PIN (not the factory one), else the refusal, with the
        same lockout as admin_unlock: the control socket's and the console's set_server on a
        paired terminal (issue 13, item 4). Opens no session."""
        if not isinstance(pin, str):
            return _fail("pin_required", "this terminal is paired: changing its server needs "
                         "the advanced-administration PIN")
        try:
            attempt = self.pins.verify(pin)
        except PinFileDamaged as exc:
            log.error("%s", exc)
            return _fail("failed", str(exc))
        if attempt.ok:
            if attempt.must_change:
                return _fail("must_change", "the factory PIN must be changed first (advanced "
                             "administration on the screen)", must_change=True)
            return None
        return _wrong_pin(attempt)

    def _check_session(self, token: object, cmd: str) -> dict[str, Any] | None:
        now = self.clock()
        if self._session is not None and now - self._session_seen > self.idle_timeout:
            log.info("admin session ended after %.0f s without use", now - self._session_seen)
            self._session = None
        if (not isinstance(token, str) or self._session is None
                or not hmac.compare_digest(token.encode(), self._session.encode())):
            return _fail("session", "the administration session has ended; enter the PIN again")
        self._session_seen = now
        if self._session_must_change and cmd not in WHILE_MUST_CHANGE:
            return _fail("must_change", "the factory PIN must be changed first",
                         must_change=True)
        return None

    # -- commands ---------------------------------------------------------------------------

    def _cmd_state(self, message: dict) -> dict:
        return {"ok": True, "locked_for": round(self.pins.locked_for(), 1),
                "must_change": self.pins.must_change()}

    def _cmd_unlock(self, message: dict) -> dict:
        pin = message.get("pin")
        if not isinstance(pin, str):
            return _fail("bad_request", 'admin_unlock needs a "pin" field (digits, as text)')
        attempt = self.pins.verify(pin)
        if attempt.ok:
            self._session = secrets.token_urlsafe(24)
            self._session_seen = self.clock()
            self._session_must_change = attempt.must_change
            log.info("advanced administration unlocked%s",
                     " (factory PIN: must be changed)" if attempt.must_change else "")
            return {"ok": True, "session": self._session, "must_change": attempt.must_change,
                    "idle_timeout": self.idle_timeout}
        self._session = None  # a wrong PIN also ends whatever session there was
        return _wrong_pin(attempt)

    def _cmd_set_pin(self, message: dict) -> dict:
        must_change = self._session_must_change
        try:
            self.pins.change(message.get("new"), message.get("old"), old_required=not must_change)
        except PinError as exc:
            locked = self.pins.locked_for()
            if locked:
                self._session = None
                return _fail("locked", str(exc), locked_for=round(locked, 1))
            return _fail("invalid_pin", str(exc))
        self._session_must_change = False
        log.info("advanced-administration PIN changed")
        return {"ok": True, "must_change": False}

    def _cmd_info(self, message: dict) -> dict:
        return {"ok": True, "network": _guarded(self.network, "network"),
                "vpn": _guarded(self.vpn, "vpn"), "terminal": self._terminal()}

    def _terminal(self) -> dict:
        status = self.status()
        return {
            "serial": status.get("serial"), "version": status.get("version"),
            "active_slot": active_slot(self.slots_dir),
            "pairing_state": status.get("state"), "paired": status.get("paired"),
            "server": status.get("server"),
            "server_key_fingerprint": status.get("server_key_fingerprint"),
        }

    def _cmd_set_server(self, message: dict) -> dict:
        address = message.get("address")
        if not isinstance(address, str):
            return _fail("bad_request", 'admin_set_server needs an "address" field (HOST[:PORT])')
        try:
            server = self.set_server(address)
        except AddressError as exc:
            return _fail("invalid_address", f"invalid server address {address.strip()!r}: {exc}",
                         reason=str(exc))
        log.info("server set to %s from the advanced administration", server)
        return {"ok": True, "server": server}

    def _cmd_reboot(self, message: dict) -> dict:
        log.warning("reboot requested from the advanced administration")
        self._session = None
        try:
            self.reboot()
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            return _fail("failed", f"the terminal cannot reboot: {exc}")
        return {"ok": True}

    def _cmd_touch(self, message: dict) -> dict:
        return {"ok": True, "idle_timeout": self.idle_timeout}

    def _cmd_lock(self, message: dict) -> dict:
        self._session = None
        return {"ok": True}


def _guarded(provider: Callable[[], dict], what: str) -> dict:
    try:
        return provider()
    except Exception as exc:  # an info page must never cost the session
        log.exception("cannot read %s information", what)
        return {"error": f"cannot read {what} information: {exc}"}
