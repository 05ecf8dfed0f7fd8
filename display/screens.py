"""What each screen id means on the display: tone, status word, layout, default wording.

The agent's model carries a title and text, and those win; the defaults here are what the
display says when a field is missing, so every contract screen (architecture §5) is readable even
from a bare {"screen": "vpn_error"}.  Wording follows the operator's pairing guide (seed 001):
the guide tells technicians to look for "Error: Terminal unpaired", the pairing code screen and
"VPN connection error", so those are the words on the glass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from display.model import ScreenModel
from display.theme import Tone

# Screens the display shows by itself, not sent by the agent.
AGENT_UNREACHABLE = "agent_unreachable"
STARTING = "starting"


class Body(Enum):
    """The screen-specific block below the text."""

    NONE = "none"
    PAIRING_CODE = "pairing_code"
    PROGRESS = "progress"


def _server(m: ScreenModel) -> str:
    return m.server or "the configured address"


@dataclass(frozen=True)
class ScreenSpec:
    tone: Tone
    title: str
    text: Callable[[ScreenModel], str]
    body: Body = Body.NONE
    label: str | None = None  # status word; None → the tone's own
    warning: str | None = None  # a line in the accent colour that must not be missed


SPECS: dict[str, ScreenSpec] = {
    "set_server": ScreenSpec(
        Tone.INFO,
        "Set server address",
        lambda m: "Open advanced administration and enter the host name or IP address of "
        "the operator's server.",
    ),
    "connecting": ScreenSpec(
        Tone.WAIT,
        "Connecting to server",
        lambda m: f"Contacting the server at {_server(m)}. Please wait.",
        label="CONNECTING",
    ),
    "server_unreachable": ScreenSpec(
        Tone.ERROR,
        "Server unreachable",
        lambda m: f"Cannot reach the server at {_server(m)}. Check the network cable and the "
        "server address in advanced administration. Retrying automatically.",
    ),
    "terminal_unpaired": ScreenSpec(
        Tone.ERROR,
        "Error: Terminal unpaired",
        lambda m: "This terminal is not paired with the server. If its software is too old, "
        "the server upgrades it automatically first. Please wait.",
    ),
    "upgrading": ScreenSpec(
        Tone.WAIT,
        "Upgrading software",
        lambda m: "The server is upgrading this terminal. It restarts by itself when done.",
        body=Body.PROGRESS,
        label="UPGRADING",
        warning="Do not power off the terminal.",
    ),
    "unknown_terminal": ScreenSpec(
        Tone.ERROR,
        "Unknown terminal",
        lambda m: f"The server does not know terminal {m.serial or 'with this serial number'}. "
        "Ask the operator to create it on the server; the terminal then pairs by itself.",
    ),
    "pairing_code": ScreenSpec(
        Tone.WAIT,
        "Terminal unpaired: pairing code",
        lambda m: "A pairing request has been sent to the server. In CAS, approve it on the "
        "terminal list page and confirm that the code matches.",
        body=Body.PAIRING_CODE,
        label="WAITING FOR APPROVAL",
    ),
    "vpn_error": ScreenSpec(
        Tone.ERROR,
        "VPN connection error",
        lambda m: "The terminal cannot connect through the VPN. Its VPN configuration has "
        "probably not been generated on the server yet. Retrying automatically.",
    ),
    "certificate_mismatch": ScreenSpec(
        Tone.ERROR,
        "SERVER CERTIFICATE MISMATCH",
        lambda m: f"The server at {_server(m)} presented a different key from the one this "
        "terminal was paired with, so the terminal will not connect. Check the server "
        "address; if the server was replaced, unpair the terminal and pair it again.",
        label="SECURITY ERROR",
    ),
    "in_service": ScreenSpec(
        Tone.OK,
        "In service",
        lambda m: "Paired and connected to the master service.",
    ),
    AGENT_UNREACHABLE: ScreenSpec(
        Tone.ERROR,
        "Terminal service not responding",
        lambda m: "The display cannot reach the terminal agent. Retrying automatically; if "
        "this lasts more than a few minutes, restart the terminal.",
    ),
    STARTING: ScreenSpec(
        Tone.NEUTRAL,
        "Starting",
        lambda m: "Connecting to the terminal agent.",
        label="STARTING",
    ),
}

ADMIN_SPEC = ScreenSpec(
    Tone.INFO, "Advanced administration", lambda m: "", label="ADVANCED ADMINISTRATION"
)
FALLBACK_SPEC = ScreenSpec(Tone.NEUTRAL, "Notice", lambda m: "")


def spec_for(screen_id: str) -> ScreenSpec:
    """The spec of a screen id; admin_* share one, anything unknown gets a neutral fallback
    (an agent newer than this display must still be able to say something)."""
    if screen_id in SPECS:
        return SPECS[screen_id]
    if screen_id.startswith("admin_"):
        return ADMIN_SPEC
    return FALLBACK_SPEC


def title_of(model: ScreenModel) -> str:
    return model.title or spec_for(model.screen).title


def text_of(model: ScreenModel) -> str:
    if model.text:
        return model.text
    try:
        return spec_for(model.screen).text(model)
    except Exception:  # a default must never be the thing that breaks a screen
        return ""
