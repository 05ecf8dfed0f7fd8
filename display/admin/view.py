"""What an admin page shows, as data: the controller builds an AdminView, widgets.py lays it out,
draw.py paints it. Like the terminal's screen model, a view is a value: the display redraws only
when it changes, tests compare views, and a view never holds a PIN digit (only how many).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

PIN = "admin_pin"
MENU = "admin_menu"
SERVER = "admin_server"
NETWORK = "admin_network"
VPN = "admin_vpn"
TERMINAL = "admin_terminal"
PAIRING = "admin_pairing"
CHANGE_PIN = "admin_change_pin"
REBOOT = "admin_reboot"
LOCKED = "admin_locked"
SCREEN_IDS = (PIN, MENU, SERVER, NETWORK, VPN, TERMINAL, PAIRING, CHANGE_PIN, REBOOT, LOCKED)

# Which layout each page uses (widgets.py).
PINPAD, MENU_GRID, KEYBOARD, INFO, CONFIRM = "pinpad", "menu", "keyboard", "info", "confirm"
KIND = {PIN: PINPAD, CHANGE_PIN: PINPAD, MENU: MENU_GRID, SERVER: KEYBOARD, NETWORK: INFO,
        VPN: INFO, TERMINAL: INFO, PAIRING: INFO, REBOOT: CONFIRM, LOCKED: CONFIRM}

MENU_ITEMS = (  # key, label, what it is for
    ("server", "Server", "host / IP and port"),
    ("network", "Network", "addresses, DNS"),
    ("vpn", "VPN", "tunnel state"),
    ("terminal", "Terminal", "serial, version, slot"),
    ("pairing", "Pairing", "code and QR"),
    ("change_pin", "Change PIN", "administration PIN"),
    ("reboot", "Reboot", "restart the terminal"),
    ("exit", "Exit", "back to the terminal"),
)

# The on-screen keyboard for host[:port]: everything an IPv4/IPv6 address or a host name needs.
# QWERTY rows of 11 keys on a landscape panel; a portrait panel has room for 7 keys of 64 px a
# row, where QWERTY would break up, so it gets digits first and the letters in alphabetical
# order. "del" and "clear" are the edit keys; the last key of a row stretches to fill it.
KEYBOARD_WIDE = ((*"1234567890", "del"), tuple("qwertyuiop-"), tuple("asdfghjkl.:"),
                 (*"zxcvbnm[]", "clear"))
KEYBOARD_NARROW = (tuple("1234567"), (*"890.:-", "del"), tuple("abcdefg"),
                   tuple("hijklmn"), tuple("opqrstu"), tuple("vwxyz[]"), ("clear",))
FIELD_CHARS = frozenset(k for row in KEYBOARD_WIDE for k in row if len(k) == 1)
MAX_FIELD = 64
MAX_PIN = 12

TONES = ("info", "error", "ok")


@dataclass(frozen=True)
class AdminView:
    screen: str
    title: str
    prompt: str = ""  # the main sentence of the page
    message: str = ""  # feedback: a refusal with its reason, "PIN changed", "Checking..."
    tone: str = "info"  # of the message
    pin_length: int = 0  # PIN pages: how many digits are entered (shown as dots)
    field: str | None = None  # the server page's text field
    rows: tuple[tuple[str, str], ...] = ()  # info pages: label, value
    qr: str | None = None  # text to show as a QR code
    buttons: tuple[str, ...] = ()  # extra buttons of info/confirm pages, in order
    pressed: str | None = None  # the button under the finger (drawn highlighted)
    busy: bool = False  # a request to the agent is under way

    def without_press(self) -> AdminView:
        return replace(self, pressed=None)

    def public(self) -> dict:
        """For the screen status file the HIL suite reads (no secrets: PIN digits never get
        here)."""
        data = asdict(self)
        data["rows"] = [list(r) for r in self.rows]
        data["buttons"] = list(self.buttons)
        return data
