"""One realistic view per admin page, for the golden screenshots, the contact sheet and the
render benchmark (the terminal screens' equivalent is display.preview.SAMPLES)."""

from __future__ import annotations

from display.admin import view as v
from display.qr import pairing_payload

SERIAL = "BT300412"
CODE = "7KQ3-M9XP"

SAMPLES: dict[str, v.AdminView] = {
    v.PIN: v.AdminView(v.PIN, "PIN", prompt="Enter the administration PIN", pin_length=3,
                       message="Wrong PIN (3 tries left)", tone="error"),
    v.MENU: v.AdminView(v.MENU, "Advanced administration",
                        message="Server set to 192.0.2.1:8443. The terminal is contacting it.",
                        tone="ok"),
    v.SERVER: v.AdminView(v.SERVER, "Server address", field="192.0.2.1:99999",
                          message="Refused: the port 99999 is outside 1-65535", tone="error"),
    v.NETWORK: v.AdminView(v.NETWORK, "Network", rows=(
        ("eth0", "up  ·  192.0.2.10/24"), ("", "2001:db8::10/64"), ("wlan0", "down"),
        ("Gateway", "192.0.2.1 (eth0)"), ("DNS", "192.0.2.53, 2001:db8::53")),
        buttons=("back", "refresh")),
    v.VPN: v.AdminView(v.VPN, "VPN", rows=(("State", "not configured"),
                                           ("Tunnel address", "—"), ("Last handshake", "—")),
                       buttons=("back", "refresh")),
    v.TERMINAL: v.AdminView(v.TERMINAL, "Terminal", rows=(
        ("Serial", SERIAL), ("Version", "20230801"), ("Active slot", "a"),
        ("Pairing state", "awaiting_approval"), ("Server", "192.0.2.1:8443"),
        ("Server key", "3f9a0c21d8e4c210")), buttons=("back", "refresh")),
    v.PAIRING: v.AdminView(v.PAIRING, "Pairing", rows=(("Pairing code", CODE),
                                                       ("Serial", SERIAL)),
                           prompt="Approve the request in CAS if it shows this code.",
                           qr=pairing_payload(CODE, SERIAL), buttons=("back",)),
    v.CHANGE_PIN: v.AdminView(v.CHANGE_PIN, "Change PIN", pin_length=6,
                              prompt="The factory PIN must be changed. Enter a new PIN "
                                     "(6-12 digits)"),
    v.REBOOT: v.AdminView(v.REBOOT, "Reboot", prompt="Restart the terminal now?",
                          message="It is out of service for about a minute.",
                          buttons=("cancel", "confirm")),
    v.LOCKED: v.AdminView(v.LOCKED, "Locked", prompt="Too many wrong PINs.",
                          message="The administration is locked. Try again in 0:30.",
                          tone="error", buttons=("exit",)),
}
