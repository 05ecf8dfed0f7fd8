"""The advanced administration's state machine, on the display side.

It holds what the technician is doing (page, digits typed so far, the address being typed) and
turns button activations and keys into requests to the agent (`admin_*`, agent/admin/service.py).
The agent decides everything that matters — PIN, lockout, address validity — and its answers
(with their reasons) are shown as they are. Nothing here blocks: `send(message, on_answer)`
queues a request and on_answer runs later on the UI thread; `busy` is shown meanwhile.

Time comes in as `now` arguments (a monotonic clock), so tests drive it without sleeping;
`deadline()` tells the event loop when to wake up next (idle timeout, lockout countdown).
"""

from __future__ import annotations

from collections.abc import Callable

from batm_common.control_commands import AdminCommand
from display.admin import view as v
from display.model import ScreenModel
from display.qr import pairing_payload

IDLE_TIMEOUT = 60.0
KEEPALIVE_EVERY = 15.0  # tell the agent the session is in use while someone types

Send = Callable[[dict, Callable[[dict], None]], None]

TITLES = {v.PIN: "PIN", v.MENU: "Advanced administration", v.SERVER: "Server address",
          v.NETWORK: "Network", v.VPN: "VPN", v.TERMINAL: "Terminal", v.PAIRING: "Pairing",
          v.CHANGE_PIN: "Change PIN", v.REBOOT: "Reboot", v.LOCKED: "Locked"}
PIN_PROMPTS = {"unlock": "Enter the administration PIN",
               "old": "Enter the current PIN",
               "new": "Enter a new PIN (6-12 digits)",
               "confirm": "Enter the new PIN again"}
MUST_CHANGE_PROMPT = "The factory PIN must be changed. Enter a new PIN (6-12 digits)"
INFO_PAGES = (v.NETWORK, v.VPN, v.TERMINAL)


def _sentence(text: object) -> str:
    text = str(text or "the agent refused the request")
    return text[:1].upper() + text[1:]


class AdminController:
    def __init__(self, send: Send, *, idle_timeout: float = IDLE_TIMEOUT,
                 terminal: Callable[[], ScreenModel] = ScreenModel) -> None:
        self.send = send
        self.idle_timeout = idle_timeout
        self.terminal = terminal  # the agent's current screen model (pairing code, server)
        self.active = False
        self._reset()

    def _reset(self) -> None:
        self.page = v.PIN
        self.stage = "unlock"
        self.session: str | None = None
        self.must_change = False
        self.entry = ""  # PIN digits being typed (never in a view, never logged)
        self.old_pin = self.new_pin = ""
        self.field = ""
        self.message, self.tone = "", "info"
        self.info: dict = {}
        self.busy = False
        self.done = False  # reboot accepted: nothing more to do here
        self.pressed: str | None = None
        self.locked_until = 0.0
        self.last_input = self.last_keepalive = 0.0
        self.now = 0.0
        self._generation = getattr(self, "_generation", 0) + 1

    # -- opening and closing ---------------------------------------------------------------

    def open(self, now: float) -> None:
        self._reset()
        self.active = True
        self.now = self.last_input = now
        self._request({"cmd": AdminCommand.STATE}, self._on_state, busy=False)

    def close(self) -> None:
        if self.session:
            self.send({"cmd": AdminCommand.LOCK, "session": self.session}, lambda answer: None)
        self._reset()
        self.active = False

    # -- time --------------------------------------------------------------------------------

    def deadline(self) -> float | None:
        if not self.active:
            return None
        idle = self.last_input + self.idle_timeout
        if self.page == v.LOCKED and self.locked_until > self.now:
            # Redraw the countdown once a second while the locked page is up (and only then).
            fraction = (self.locked_until - self.now) % 1
            return min(idle, self.now + (fraction or 1.0) + 1e-3, self.locked_until)
        return idle

    def tick(self, now: float) -> None:
        self.now = now
        if not self.active:
            return
        if now >= self.last_input + self.idle_timeout:
            self.close()
        elif self.page == v.LOCKED and self.locked_until and now >= self.locked_until:
            self._to_pin("unlock", "You can try the PIN again.", "info")

    def touched(self, now: float) -> None:
        self.now = self.last_input = now
        if self.session and now - self.last_keepalive >= KEEPALIVE_EVERY:
            self.last_keepalive = now
            self.send({"cmd": AdminCommand.TOUCH, "session": self.session}, lambda answer: None)

    # -- talking to the agent ----------------------------------------------------------------

    def _request(self, message: dict, handler: Callable[[dict], None], busy: bool = True,
                 note: str = "") -> None:
        if self.session and "session" not in message:
            message = {**message, "session": self.session}
        generation = self._generation
        self.busy = busy
        if note:
            self.message, self.tone = note, "info"

        def on_answer(answer: dict) -> None:
            if generation != self._generation or not self.active:
                return  # the admin was left (or restarted) meanwhile
            self.busy = False
            if not isinstance(answer, dict):
                answer = {"ok": False, "error": "the agent sent no answer"}
            if answer.get("code") == "session":
                self.session = None
                self._to_pin("unlock", "The session has ended. Enter the PIN again.", "info")
                return
            if answer.get("code") == "locked":
                self._to_locked(answer)
                return
            handler(answer)

        self.send(message, on_answer)

    def _on_state(self, answer: dict) -> None:
        if answer.get("ok") and answer.get("locked_for"):
            self._to_locked(answer)

    def _to_locked(self, answer: dict) -> None:
        self.session = None
        self.page = v.LOCKED
        self.locked_until = self.now + float(answer.get("locked_for") or 0)
        self.entry = self.old_pin = self.new_pin = ""

    def _to_pin(self, stage: str, message: str = "", tone: str = "info") -> None:
        self.page = v.CHANGE_PIN if stage in ("old", "new", "confirm") else v.PIN
        self.stage, self.entry = stage, ""
        self.message, self.tone = message, tone

    def _to(self, page: str, message: str = "", tone: str = "info") -> None:
        self.page, self.message, self.tone = page, message, tone
        self.entry = ""

    # -- input ------------------------------------------------------------------------------

    def press(self, key: str | None) -> None:
        self.pressed = key

    def release(self, key: str | None, now: float) -> None:
        pressed, self.pressed = self.pressed, None
        if key is not None and key == pressed:
            self.activate(key, now)

    def activate(self, key: str, now: float) -> None:
        self.touched(now)
        if self.busy or self.done:
            return
        if self.page in (v.PIN, v.CHANGE_PIN):
            self._pinpad(key)
        elif self.page == v.MENU:
            self._menu(key)
        elif self.page == v.SERVER:
            self._keyboard(key)
        elif key in ("back", "cancel"):
            self._to(v.MENU)
        elif key == "exit":
            self.close()
        elif key == "refresh" and self.page in INFO_PAGES:
            self._load_info()
        elif key == "confirm" and self.page == v.REBOOT:
            self._request({"cmd": AdminCommand.REBOOT}, self._on_reboot, note="Restarting...")

    def type_text(self, text: str, now: float) -> None:
        """A character from a physical keyboard."""
        text = text.lower()
        if self.page in (v.PIN, v.CHANGE_PIN) and text.isdigit() and text.isascii():
            self.activate(f"digit:{text}", now)
        elif self.page == v.SERVER and text in v.FIELD_CHARS:
            self.activate(f"char:{text}", now)

    def keyboard_action(self, action: str, now: float) -> None:
        """Enter, Backspace or Escape from a physical keyboard."""
        mapping = {
            "enter": {v.PIN: "ok", v.CHANGE_PIN: "ok", v.SERVER: "save"},
            "backspace": {v.PIN: "del", v.CHANGE_PIN: "del", v.SERVER: "del"},
            "escape": {v.PIN: "cancel", v.CHANGE_PIN: "cancel", v.SERVER: "back", v.MENU: "exit",
                       v.LOCKED: "exit", v.REBOOT: "cancel"},
        }
        key = mapping.get(action, {}).get(self.page, "back" if action == "escape" else None)
        if key:
            self.activate(key, now)

    # -- pages --------------------------------------------------------------------------------

    def _pinpad(self, key: str) -> None:
        if key.startswith("digit:"):
            if len(self.entry) < v.MAX_PIN:
                self.entry += key[6:]
            self.message = ""
        elif key == "del":
            self.entry = self.entry[:-1]
        elif key == "cancel":
            if self.page == v.PIN or self.must_change:
                self.close()
            else:
                self._to(v.MENU)
        elif key == "ok":
            if not self.entry:
                self.message, self.tone = "Enter the digits first.", "error"
            else:
                self._submit_pin()

    def _submit_pin(self) -> None:
        entry, self.entry = self.entry, ""
        if self.stage == "unlock":
            self._request({"cmd": AdminCommand.UNLOCK, "pin": entry}, self._on_unlock,
                          note="Checking...")
        elif self.stage == "old":
            self.old_pin = entry
            self._to_pin("new")
        elif self.stage == "new":
            self.new_pin = entry
            self._to_pin("confirm")
        elif entry != self.new_pin:
            self.new_pin = ""
            self._to_pin("new", "The two PINs differ. Enter the new PIN again.", "error")
        else:
            message = {"cmd": AdminCommand.SET_PIN, "new": self.new_pin}
            if not self.must_change:
                message["old"] = self.old_pin
            self.old_pin = self.new_pin = ""
            self._request(message, self._on_set_pin, note="Saving...")

    def _on_unlock(self, answer: dict) -> None:
        if answer.get("ok"):
            self.session = answer.get("session")
            self.must_change = bool(answer.get("must_change"))
            if self.must_change:
                self._to_pin("new", "", "info")
            else:
                self._to(v.MENU)
            return
        self._to_pin("unlock", _sentence(answer.get("error")), "error")

    def _on_set_pin(self, answer: dict) -> None:
        if answer.get("ok"):
            self.must_change = False
            self._to(v.MENU, "PIN changed.", "ok")
            return
        error = _sentence(answer.get("error"))
        wrong_old = "current PIN" in error and not self.must_change
        self._to_pin("old" if wrong_old else "new", error, "error")

    def _menu(self, key: str) -> None:
        if key == "server":
            self.field = self.terminal().server or ""
            self._to(v.SERVER)
        elif key in ("network", "vpn", "terminal"):
            self._to(f"admin_{key}")
            self.info = {}
            self._load_info()
        elif key == "pairing":
            self._to(v.PAIRING)
        elif key == "change_pin":
            self._to_pin("old")
        elif key == "reboot":
            self._to(v.REBOOT)
        elif key == "exit":
            self.close()

    def _keyboard(self, key: str) -> None:
        if key.startswith("char:"):
            if len(self.field) < v.MAX_FIELD:
                self.field += key[5:]
        elif key == "del":
            self.field = self.field[:-1]
        elif key == "clear":
            self.field = ""
        elif key == "back":
            self._to(v.MENU)
            return
        elif key == "save":
            self._request({"cmd": AdminCommand.SET_SERVER, "address": self.field},
                          self._on_set_server, note="Saving...")
            return
        self.message = ""

    def _on_set_server(self, answer: dict) -> None:
        if answer.get("ok"):
            self._to(v.MENU, f"Server set to {answer.get('server')}. The terminal is "
                     "contacting it.", "ok")
        elif answer.get("code") == "invalid_address":
            self.message, self.tone = f"Refused: {answer.get('reason')}", "error"
        else:
            self.message, self.tone = _sentence(answer.get("error")), "error"

    def _load_info(self) -> None:
        self._request({"cmd": AdminCommand.INFO}, self._on_info, note="Reading...")

    def _on_info(self, answer: dict) -> None:
        if answer.get("ok"):
            self.info = answer
            self.message = ""
        else:
            self.message, self.tone = _sentence(answer.get("error")), "error"

    def _on_reboot(self, answer: dict) -> None:
        if answer.get("ok"):
            self.session = None
            self.done = True
            self.message, self.tone = "The terminal is restarting.", "ok"
        else:
            self.message, self.tone = _sentence(answer.get("error")), "error"

    # -- the view ----------------------------------------------------------------------------

    def view(self) -> v.AdminView:
        from display.admin.pages import info_rows, pairing_view

        page = self.page
        base = v.AdminView(page, TITLES.get(page, page), message=self.message, tone=self.tone,
                           pressed=self.pressed, busy=self.busy)
        if page in (v.PIN, v.CHANGE_PIN):
            prompt = (MUST_CHANGE_PROMPT if self.must_change and self.stage == "new"
                      else PIN_PROMPTS[self.stage])
            return _replace(base, prompt=prompt, pin_length=len(self.entry))
        if page == v.SERVER:
            return _replace(base, field=self.field)
        if page in INFO_PAGES:
            return _replace(base, rows=info_rows(page, self.info), buttons=("back", "refresh"))
        if page == v.PAIRING:
            return pairing_view(base, self.terminal(), pairing_payload)
        if page == v.REBOOT:
            if self.done:
                return _replace(base, prompt="Restarting the terminal...", buttons=())
            return _replace(base, prompt="Restart the terminal now?",
                            message=self.message or "It is out of service for about a minute.",
                            buttons=("cancel", "confirm"))
        if page == v.LOCKED:
            left = max(0, int(self.locked_until - self.now + 0.999))
            return _replace(base, prompt="Too many wrong PINs.", tone="error",
                            message=f"The administration is locked. Try again in "
                                    f"{left // 60}:{left % 60:02d}.", buttons=("exit",))
        return base


def _replace(view: v.AdminView, **changes) -> v.AdminView:
    from dataclasses import replace

    return replace(view, **changes)
