"""The info pages' contents: the agent's admin_info answer (agent/admin/service.py) as label/value
rows, and the pairing page from the terminal's own screen model. Defensive like model.py: the
answer is data from another process and a missing or odd field shows as "—", never raises."""

from __future__ import annotations

from dataclasses import replace

from display.admin import view as v
from display.model import ScreenModel, clean_text

DASH = "—"


def _s(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return clean_text(value, 120) or DASH


def _network_rows(net: dict) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    interfaces = net.get("interfaces") if isinstance(net.get("interfaces"), list) else []
    for entry in interfaces[:6]:
        if not isinstance(entry, dict):
            continue
        addresses = [a for a in entry.get("addresses") or [] if isinstance(a, str)]
        link = _s(entry.get("link"))
        first = f"{link}  ·  {addresses[0]}" if addresses else link
        rows.append((_s(entry.get("name")), first))
        rows.extend(("", _s(a)) for a in addresses[1:3])
    if not rows:
        rows.append(("Interfaces", "none found"))
    gateway = _s(net.get("gateway"))
    if net.get("gateway_interface"):
        gateway += f" ({_s(net.get('gateway_interface'))})"
    dns = [d for d in net.get("dns") or [] if isinstance(d, str)]
    rows += [("Gateway", gateway), ("DNS", ", ".join(dns[:3]) or DASH)]
    return rows


def info_rows(page: str, info: dict) -> tuple[tuple[str, str], ...]:
    if not info:
        return ()
    section = info.get({v.NETWORK: "network", v.VPN: "vpn", v.TERMINAL: "terminal"}[page])
    if not isinstance(section, dict):
        return (("", "no information"),)
    if section.get("error"):
        return (("Error", _s(section.get("error"))),)
    if page == v.NETWORK:
        return tuple(_network_rows(section))
    if page == v.VPN:
        return (("State", _s(section.get("state"))), ("Tunnel address", _s(section.get("address"))),
                ("Last handshake", _s(section.get("last_handshake"))))
    return (("Serial", _s(section.get("serial"))), ("Version", _s(section.get("version"))),
            ("Active slot", _s(section.get("active_slot"))),
            ("Pairing state", _s(section.get("pairing_state"))),
            ("Paired", _s(section.get("paired"))), ("Server", _s(section.get("server"))),
            ("Server key", _s(section.get("server_key_fingerprint"))))


def pairing_view(base: v.AdminView, terminal: ScreenModel, payload) -> v.AdminView:
    code = terminal.pairing_code if terminal.screen == "pairing_code" else None
    if not code:
        return replace(base, prompt="No pairing in progress.",
                       rows=(("Terminal screen", _s(terminal.screen)),
                             ("Serial", _s(terminal.serial))),
                       message="The code appears once a server is set and knows this terminal.",
                       buttons=("back",))
    return replace(base, prompt="Approve the request in CAS if it shows this code.",
                   rows=(("Pairing code", code), ("Serial", _s(terminal.serial))),
                   qr=payload(code, terminal.serial), buttons=("back",))
