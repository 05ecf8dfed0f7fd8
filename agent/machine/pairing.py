"""Transitions of pairing, the gate session and the master service link (pure).

    Started / ServerSet       → Connecting             CheckIn when paired, else StartPairing
    PairingOffered            → AwaitingApproval(code) PollApproval … until Approved
    Approved                  → Connecting             SavePairing, CheckIn
    CheckedIn                 → InService              WatchSession   (a gate-only server)
                              → ConnectingMaster       WatchSession, ObtainMasterCredentials
    MasterCredentialsIssued   →                        BringUpVpn (scenario A) or ConnectMaster
    MasterConnected           → InService
    MasterLost / GateUnreachable / TerminalUnknown / ServerKeyMismatch
                              → Unreachable / UnknownTerminal / CertificateMismatch  RetryLater
    Unpaired                  → Connecting             DropCredentials, StartPairing
    MasterRejected            → Unreachable            DropMasterCredentials, RetryLater
                                (then CheckIn, ObtainMasterCredentials: still paired)

Master service (docs/protocol.md §7). A machine made with `initial_state(uses_master=True)` (the
daemon's) is in service only once it is connected to the master service: after the check-in it
hands the gate an MQTT password it made itself if it holds none (ObtainMasterCredentials), then
connects (ConnectMaster). Losing the link shows "master service unreachable" and retries through
a fresh check-in with backoff. A broker that rejects the credentials (an older credentials file
restored, a password re-issued) costs only the MQTT password (issue 13, item 6): the terminal
still holds its identity key, so after a back-off it checks in and obtains a new password from
the gate; only the gate's "unpaired" drops the pairing. A VPN step (scenario A,
agent/machine/vpn.py) slots in between the credentials and ConnectMaster. Without `uses_master`
the check-in alone means in service (a gate-only server).
"""

from __future__ import annotations

from dataclasses import replace

from agent.machine.state import (
    AgentState,
    ApprovalPending,
    Approved,
    AwaitingApproval,
    CertificateMismatch,
    CheckedIn,
    CheckIn,
    Connecting,
    ConnectingMaster,
    DropCredentials,
    DropMasterCredentials,
    Effect,
    Event,
    GateUnreachable,
    InService,
    MasterConnected,
    MasterCredentialsIssued,
    MasterLost,
    MasterRejected,
    NoServer,
    ObtainMasterCredentials,
    PairingOffered,
    PairingRequestGone,
    PollApproval,
    RetryDue,
    SavePairing,
    SaveServer,
    ServerKeyMismatch,
    ServerSet,
    SessionAlive,
    Started,
    StartPairing,
    TerminalUnknown,
    Transition,
    UnknownTerminal,
    Unpaired,
    Unreachable,
    WatchSession,
    failed,
)
from agent.machine.vpn import master_step
from agent.upgrade.states import TerminalUnpaired
from agent.vpn.states import VpnError
from batm_common.hostaddr import ServerAddress

# The phases that wait for RetryDue to try the gate again (with a fresh check-in or pairing).
RETRYING_PHASES = Unreachable | UnknownTerminal | CertificateMismatch | TerminalUnpaired | VpnError


def transition(state: AgentState, event: Event) -> Transition:
    match event:
        case Started(server=None):
            return replace(state, phase=NoServer(), server=None, paired=False), []
        case Started(server=server, paired=paired, has_master_credentials=has_master):
            return _contact(replace(state, server=server, paired=paired,
                                    has_master_credentials=paired and has_master))
        case ServerSet(server=server):
            return _set_server(state, server)

    # Every other event answers an effect; ignore answers to questions no longer asked.
    if getattr(event, "generation", None) != state.generation:
        return state, []

    match event:
        case PairingOffered(request_id=request_id, code=code, pin=pin):
            new = replace(state, phase=AwaitingApproval(request_id, code, pin), failures=0)
            return new, [PollApproval(state.generation, request_id, pin)]
        case ApprovalPending() if isinstance(state.phase, AwaitingApproval):
            phase = state.phase
            return state, [PollApproval(state.generation, phase.request_id, phase.pin)]
        case Approved() if isinstance(state.phase, AwaitingApproval):
            pin = state.phase.pin
            new, contact = _contact(replace(state, paired=True, failures=0))
            return new, [SavePairing(pin), *contact]
        case PairingRequestGone():
            return _contact(state)
        case CheckedIn(vpn=vpn):
            return _checked_in(state, vpn)
        case SessionAlive() if isinstance(state.phase, InService | ConnectingMaster):
            return state, [WatchSession(state.generation)]
        case MasterCredentialsIssued() if isinstance(state.phase, ConnectingMaster):
            new = replace(state, has_master_credentials=True)
            return new, [master_step(new)]
        case MasterConnected() if isinstance(state.phase, ConnectingMaster):
            return replace(state, phase=InService(), failures=0), []
        case MasterLost(reason=reason) if isinstance(state.phase, ConnectingMaster | InService):
            return failed(state, Unreachable(f"master service unreachable: {reason}"))
        case MasterRejected(reason=reason) if state.paired:
            # Never knock again with a password the broker refused; the pairing stands.
            new, retry = failed(replace(state, has_master_credentials=False),
                                Unreachable(f"the broker refused this terminal's MQTT password "
                                            f"({reason}); obtaining a new one from the gate"))
            return new, [DropMasterCredentials(), *retry]
        case Unpaired():
            new, contact = _contact(replace(_drop(state), failures=0))
            return new, [DropCredentials(), *contact] if state.paired else contact
        case TerminalUnknown():
            effects: list[Effect] = [DropCredentials()] if state.paired else []
            new, retry = failed(_drop(state), UnknownTerminal())
            return new, effects + retry
        case GateUnreachable(reason=reason):
            return failed(state, Unreachable(reason))
        case ServerKeyMismatch(reason=reason):
            return failed(state, CertificateMismatch(reason))
        case RetryDue() if isinstance(state.phase, RETRYING_PHASES):
            return _contact(state)
    return state, []


def _checked_in(state: AgentState, vpn: bool = False) -> Transition:
    """Checked in with the gate: in service, or on to the master service first."""
    gen = state.generation
    if not state.uses_master:
        return replace(state, phase=InService(), failures=0), [WatchSession(gen)]
    # The session watch runs from here on, so an unpair reaches the terminal in every later
    # phase. Scenario A: the VPN comes up between the credentials and ConnectMaster.
    state = replace(state, phase=ConnectingMaster(), uses_vpn=vpn)
    nxt: Effect = master_step(state) if state.has_master_credentials else (
        ObtainMasterCredentials(gen))
    return state, [WatchSession(gen), nxt]


def _drop(state: AgentState) -> AgentState:
    return replace(state, paired=False, has_master_credentials=False)


def _contact(state: AgentState) -> Transition:
    """Start a fresh attempt to reach the gate: check in when paired, else ask to pair."""
    gen = state.generation + 1
    new = replace(state, phase=Connecting(), generation=gen)
    return new, [CheckIn(gen) if state.paired else StartPairing(gen)]


def _set_server(state: AgentState, server: ServerAddress) -> Transition:
    same = state.server == server
    if same and state.paired and not isinstance(state.phase, CertificateMismatch):
        # Re-entering the address the terminal is paired with is not a server change: keep the
        # credentials and simply try again now.
        return _contact(replace(state, failures=0))
    # A new server (or, after a certificate mismatch, the technician deciding to trust the
    # server as it is now): forget the old pairing and pair afresh.
    effects: list[Effect] = [SaveServer(server)]
    if state.paired:
        effects.append(DropCredentials())
    new, contact = _contact(replace(_drop(state), server=server, failures=0))
    return new, effects + contact
