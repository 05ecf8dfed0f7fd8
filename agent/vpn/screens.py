"""The vpn_error screen (architecture §5): what went wrong with the VPN, and what to do about it.

Wording follows the operator's pairing guide ("VPN connection error … you probably didn't
generate VPN configuration"), so a technician holding the guide recognises the screen.
"""

from __future__ import annotations

from agent.hardware import TerminalFacts
from agent.vpn.states import FAILED, MISSING, UNHEALTHY, VpnError
from batm_common.screen_ids import ScreenId

TITLE = "VPN connection error"


def _port(endpoint: str | None) -> str:
    if endpoint and ":" in endpoint:
        return endpoint.rsplit(":", 1)[1]
    return "51820"


def vpn_screen(error: VpnError, facts: TerminalFacts, retrying: bool = False) -> dict:
    if error.kind == MISSING:
        text = ("VPN configuration missing on the server: ask the operator to generate it "
                f"(batm-server terminal vpn {facts.serial}). This terminal keeps trying and "
                "connects by itself once it exists.")
    elif error.kind == FAILED:
        text = ("The VPN cannot start on this terminal. Retrying automatically; if this "
                "persists, contact support with the detail below.")
    else:
        where = f" ({error.endpoint})" if error.endpoint else ""
        lost = "The VPN tunnel was lost" if error.kind == UNHEALTHY else (
            "VPN tunnel does not come up")
        text = (f"{lost}: check that UDP port {_port(error.endpoint)} to the server{where} is "
                "open. Retrying automatically.")
    if retrying:
        text += " Retrying now…"
    return {"screen": ScreenId.VPN_ERROR, "title": TITLE, "text": text, "detail": error.detail}
