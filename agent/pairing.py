"""The pairing state machine: a pure transition function (state, event) → (state, effects).

No I/O happens here. The daemon feeds it events that its adapters (gate client, timers, control
socket) produce, persists the effects that change stored state *before* acting on the others,
and renders the screen from the resulting state.

Every network effect carries the machine's `generation`; so does the event that answers it. A
change of course (new server, credentials dropped, retry started) bumps the generation, so a late
answer to a question the machine no longer asks is ignored, and the daemon cancels what is still
running for an older generation.

Master service (docs/protocol.md §7). A machine made with `initial_state(uses_master=True)` (the
daemon's) is in service only once it is connected to the master service: after the check-in it
hands the gate an MQTT password it made itself if it holds none (ObtainMasterCredentials), then
connects (ConnectMaster). Losing the link shows "master service unreachable" and retries through
a fresh check-in with backoff; a broker that rejects the credentials sends the terminal back to
pairing at once, without retrying. A VPN step (scenario A) slots in between the credentials and
ConnectMaster. Without `uses_master` the check-in alone means in service (a gate-only server).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from agent.settings import ServerPin
from agent.upgrade_states import (
    UPGRADE_EVENTS,
    TerminalUnpaired,
    UpgradeEffect,
    UpgradeEvent,
    Upgrading,
)
from agent.vpn.states import VPN_EVENTS, VpnEffect, VpnError, VpnEvent
from batm_common.hostaddr import ServerAddress

# --------------------------------------------------------------------------- phases


@dataclass(frozen=True)
class NoServer:
    """No server address set: the technician must set one in advanced administration."""


@dataclass(frozen=True)
class Connecting:
    """Talking to the gate (hello, or check-in when paired)."""


@dataclass(frozen=True)
class Unreachable:
    reason: str


@dataclass(frozen=True)
class UnknownTerminal:
    """The server has no terminal with this serial; the operator must create it."""


@dataclass(frozen=True)
class AwaitingApproval:
    request_id: str
    code: str
    pin: ServerPin  # the server this request was made with; persisted only on approval


@dataclass(frozen=True)
class ConnectingMaster:
    """Checked in; obtaining MQTT credentials and connecting to the master service."""


@dataclass(frozen=True)
class InService:
    pass


@dataclass(frozen=True)
class CertificateMismatch:
    reason: str


Phase = (
    NoServer | Connecting | Unreachable | UnknownTerminal | AwaitingApproval | ConnectingMaster
    | InService | CertificateMismatch | TerminalUnpaired | Upgrading
    | VpnError
)


@dataclass(frozen=True)
class AgentState:
    phase: Phase
    server: ServerAddress | None = None
    paired: bool = False
    generation: int = 0
    failures: int = 0  # consecutive failed attempts, for backoff
    uses_master: bool = False  # in service means connected to the master service (MQTT)
    has_master_credentials: bool = False
    uses_vpn: bool = False  # scenario A: the master service only through the VPN
    vpn_error: VpnError | None = None  # the last VPN failure, shown while retrying
    trying_upgrade: bool = False  # running a new slot on trial: commit once the gate answers
    upgrade_note: str | None = None  # why the last upgrade failed, for the screen's detail

    @property
    def name(self) -> str:
        return type(self.phase).__name__


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Started:
    server: ServerAddress | None
    paired: bool
    has_master_credentials: bool = False


@dataclass(frozen=True)
class ServerSet:
    server: ServerAddress


@dataclass(frozen=True)
class PairingOffered:
    generation: int
    request_id: str
    code: str
    pin: ServerPin


@dataclass(frozen=True)
class TerminalUnknown:
    generation: int


@dataclass(frozen=True)
class ApprovalPending:
    generation: int


@dataclass(frozen=True)
class Approved:
    generation: int


@dataclass(frozen=True)
class PairingRequestGone:
    generation: int


@dataclass(frozen=True)
class CheckedIn:
    generation: int
    vpn: bool = False  # scenario A (the check-in answer said so)


@dataclass(frozen=True)
class SessionAlive:
    generation: int


@dataclass(frozen=True)
class Unpaired:
    """The server says this terminal is not (or no longer) paired."""

    generation: int


@dataclass(frozen=True)
class GateUnreachable:
    generation: int
    reason: str


@dataclass(frozen=True)
class ServerKeyMismatch:
    generation: int
    reason: str


@dataclass(frozen=True)
class RetryDue:
    generation: int


@dataclass(frozen=True)
class MasterCredentialsIssued:
    """The gate accepted the MQTT password the terminal made (and it is stored)."""

    generation: int


@dataclass(frozen=True)
class MasterConnected:
    generation: int


@dataclass(frozen=True)
class MasterLost:
    generation: int
    reason: str


@dataclass(frozen=True)
class MasterRejected:
    """The broker refused the credentials (bad username or password / not authorized)."""

    generation: int
    reason: str


Event = (
    Started | ServerSet | PairingOffered | TerminalUnknown | ApprovalPending | Approved
    | PairingRequestGone | CheckedIn | SessionAlive | Unpaired | GateUnreachable
    | ServerKeyMismatch | RetryDue | MasterCredentialsIssued | MasterConnected | MasterLost
    | MasterRejected | UpgradeEvent
    | VpnEvent
)

# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class SaveServer:
    server: ServerAddress


@dataclass(frozen=True)
class SavePairing:
    pin: ServerPin


@dataclass(frozen=True)
class DropCredentials:
    pass


@dataclass(frozen=True)
class StartPairing:
    generation: int


@dataclass(frozen=True)
class PollApproval:
    generation: int
    request_id: str
    pin: ServerPin


@dataclass(frozen=True)
class CheckIn:
    generation: int


@dataclass(frozen=True)
class WatchSession:
    generation: int


@dataclass(frozen=True)
class RetryLater:
    generation: int
    attempt: int


@dataclass(frozen=True)
class ObtainMasterCredentials:
    """Make an MQTT password, hand it to the gate (signed), store it (0600)."""

    generation: int


@dataclass(frozen=True)
class ConnectMaster:
    """Open the MQTT link; it answers MasterConnected, MasterLost or MasterRejected."""

    generation: int


# DropCredentials also deletes the MQTT password: a terminal that is no longer paired holds
# nothing that opens the master service.
PERSISTENT_EFFECTS = (SaveServer, SavePairing, DropCredentials)
Effect = (
    SaveServer | SavePairing | DropCredentials | StartPairing | PollApproval | CheckIn
    | WatchSession | RetryLater | ObtainMasterCredentials | ConnectMaster | UpgradeEffect
    | VpnEffect
)
Transition = tuple[AgentState, list[Effect]]


def initial_state(uses_master: bool = False) -> AgentState:
    return AgentState(phase=NoServer(), uses_master=uses_master)


def _checked_in(state: AgentState, vpn: bool = False) -> Transition:
    """Checked in with the gate: in service, or on to the master service first."""
    gen = state.generation
    if not state.uses_master:
        return replace(state, phase=InService(), failures=0), [WatchSession(gen)]
    # The session watch runs from here on, so an unpair reaches the terminal in every later
    # phase. Scenario A: the VPN comes up between the credentials and ConnectMaster.
    from agent.vpn import machine as vpn_machine

    state = replace(state, phase=ConnectingMaster(), uses_vpn=vpn)
    nxt: Effect = vpn_machine.master_step(state) if state.has_master_credentials else (
        ObtainMasterCredentials(gen))
    return state, [WatchSession(gen), nxt]


def _drop(state: AgentState) -> AgentState:
    return replace(state, paired=False, has_master_credentials=False)


def _contact(state: AgentState) -> Transition:
    """Start a fresh attempt to reach the gate: check in when paired, else ask to pair."""
    gen = state.generation + 1
    new = replace(state, phase=Connecting(), generation=gen)
    return new, [CheckIn(gen) if state.paired else StartPairing(gen)]


def _failed(state: AgentState, phase: Phase) -> Transition:
    failures = state.failures + 1
    new = replace(state, phase=phase, failures=failures)
    return new, [RetryLater(state.generation, failures)]


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


def transition(state: AgentState, event: Event) -> Transition:
    from agent.vpn import machine as vpn_machine  # scenario A (agent/vpn/machine.py)

    if isinstance(event, VPN_EVENTS):
        new, effects = vpn_machine.transition(state, event)
    elif isinstance(event, RetryDue) and isinstance(state.phase, VpnError) and (
            event.generation == state.generation):
        new, effects = _contact(state)
    else:
        new, effects = _transition(state, event)
    return vpn_machine.after(state, new, effects)


def _transition(state: AgentState, event: Event) -> Transition:
    match event:
        case Started(server=None):
            return replace(state, phase=NoServer(), server=None, paired=False), []
        case Started(server=server, paired=paired, has_master_credentials=has_master):
            return _contact(replace(state, server=server, paired=paired,
                                    has_master_credentials=paired and has_master))
        case ServerSet(server=server):
            return _set_server(state, server)
    if isinstance(event, UPGRADE_EVENTS) or state.trying_upgrade:
        from agent import upgrade_machine  # staged upgrades (agent/upgrade_machine.py)

        if isinstance(event, UPGRADE_EVENTS) or upgrade_machine.reached_gate(state, event):
            return upgrade_machine.transition(state, event)

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
            from agent.vpn import machine as vpn_machine

            return new, [vpn_machine.master_step(new)]
        case MasterConnected() if isinstance(state.phase, ConnectingMaster):
            return replace(state, phase=InService(), failures=0), []
        case MasterLost(reason=reason) if isinstance(state.phase, ConnectingMaster | InService):
            return _failed(state, Unreachable(f"master service unreachable: {reason}"))
        case MasterRejected() if state.paired:
            # Do not knock again with credentials the broker refused: pair afresh.
            new, contact = _contact(replace(_drop(state), failures=0))
            return new, [DropCredentials(), *contact]
        case Unpaired():
            new, contact = _contact(replace(_drop(state), failures=0))
            return new, [DropCredentials(), *contact] if state.paired else contact
        case TerminalUnknown():
            effects: list[Effect] = [DropCredentials()] if state.paired else []
            new, retry = _failed(_drop(state), UnknownTerminal())
            return new, effects + retry
        case GateUnreachable(reason=reason):
            return _failed(state, Unreachable(reason))
        case ServerKeyMismatch(reason=reason):
            return _failed(state, CertificateMismatch(reason))
        case RetryDue() if isinstance(
            state.phase, Unreachable | UnknownTerminal | CertificateMismatch | TerminalUnpaired
        ):
            return _contact(state)
    return state, []
