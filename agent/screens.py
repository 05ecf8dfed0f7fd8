"""The screen model: what the kiosk shows, as data (architecture §5).

The agent never draws. It derives one model from its state; the display renders it and the tests
read it. Wording follows the operator's pairing guide so that a technician holding the guide
recognises each screen.
"""

from __future__ import annotations

from agent.hardware import TerminalFacts
from agent.machine.state import (
    AgentState,
    AwaitingApproval,
    CertificateMismatch,
    Connecting,
    ConnectingMaster,
    InService,
    NoServer,
    UnknownTerminal,
    Unreachable,
)
from agent.upgrade.screens import UPGRADE_PHASES, upgrade_screen
from agent.vpn.screens import vpn_screen
from batm_common.screen_ids import ScreenId


def screen_model(state: AgentState, facts: TerminalFacts) -> dict:
    """The model for `state`, without the seq/changed_at stamps the screen bus adds."""
    server = str(state.server) if state.server else None
    model = {
        "screen": "",
        "title": "",
        "text": "",
        "pairing_code": None,
        "serial": facts.serial,
        "version": facts.version,
        "server": server,
        "progress": None,
        "step": None,
        "steps": None,
        "detail": None,
    }
    phase = state.phase
    match phase:
        case NoServer():
            model.update(
                screen=ScreenId.SET_SERVER,
                title="Server not set",
                text="Set the terminal server's host/IP in advanced administration.",
            )
        case Connecting():
            model.update(
                screen=ScreenId.CONNECTING,
                title="Connecting",
                text=f"Contacting the server at {server}…",
            )
        case ConnectingMaster():
            model.update(
                screen=ScreenId.CONNECTING,
                title="Connecting",
                text=f"Paired with {server}; connecting to the master service…",
            )
        case Unreachable(reason=reason):
            model.update(
                screen=ScreenId.SERVER_UNREACHABLE,
                title="Server unreachable",
                text=f"Cannot reach the server at {server}. Retrying automatically.",
                detail=reason,
            )
        case UnknownTerminal():
            model.update(
                screen=ScreenId.UNKNOWN_TERMINAL,
                title="Unknown terminal",
                text=(
                    f"The server does not know terminal {facts.serial}. Create the terminal on "
                    "the server; this terminal keeps trying."
                ),
            )
        case AwaitingApproval(code=code):
            model.update(
                screen=ScreenId.PAIRING_CODE,
                title="Terminal not paired",
                text=(
                    "Approve the pairing request for this terminal in the terminal list on the "
                    "server, and check that it shows this code:"
                ),
                pairing_code=code,
            )
        case InService():
            model.update(
                screen=ScreenId.IN_SERVICE,
                title="In service",
                text=f"Paired and connected to {server}.",
            )
        case CertificateMismatch(reason=reason):
            model.update(
                screen=ScreenId.CERTIFICATE_MISMATCH,
                title="SERVER CERTIFICATE MISMATCH",
                text=(
                    f"The server at {server} no longer presents the key this terminal paired "
                    "with. The connection may be intercepted. If the server was replaced on "
                    "purpose, set the server address again in advanced administration."
                ),
                detail=reason,
            )
    if isinstance(phase, UPGRADE_PHASES):
        model.update(upgrade_screen(phase, facts))
    if state.vpn_error is not None:  # scenario A: shown while the terminal retries, too
        model.update(vpn_screen(state.vpn_error, facts,
                                retrying=phase != state.vpn_error))
    return model
