"""The pairing state machine's state: a pure transition function (state, event) → (state, effects)
reads and returns the AgentState defined here (the transitions: agent/machine/dispatch.py).

No I/O happens here. The daemon feeds it events that its adapters (gate client, timers, control
socket) produce, persists the effects that change stored state *before* acting on the others,
and renders the screen from the resulting state.

Every network effect carries the machine's `generation`; so does the event that answers it. A
change of course (new server, credentials dropped, retry started) bumps the generation, so a late
answer to a question the machine no longer asks is ignored, and the daemon cancels what is still
running for an older generation.

Here: AgentState; the phases, events and effects of pairing and the master service link; the
unions that include the upgrade's (agent/upgrade/states.py) and the VPN's (agent/vpn/states.py);
and `failed`, the step every feature's transitions take when an attempt fails.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from agent.settings import ServerPin
from agent.upgrade.states import (
    TerminalUnpaired,
    UpgradeEffect,
    UpgradeEvent,
    Upgrading,
)
from agent.vpn.states import VpnEffect, VpnError, VpnEvent
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
class DropMasterCredentials:
    """Delete the MQTT password only: the broker refused it, the pairing stands (a new one is
    obtained from the gate with the identity key after the next check-in)."""


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
PERSISTENT_EFFECTS = (SaveServer, SavePairing, DropCredentials, DropMasterCredentials)
Effect = (
    SaveServer | SavePairing | DropCredentials | DropMasterCredentials | StartPairing
    | PollApproval | CheckIn
    | WatchSession | RetryLater | ObtainMasterCredentials | ConnectMaster | UpgradeEffect
    | VpnEffect
)
Transition = tuple[AgentState, list[Effect]]


def initial_state(uses_master: bool = False) -> AgentState:
    return AgentState(phase=NoServer(), uses_master=uses_master)


def failed(state: AgentState, phase: Phase) -> Transition:
    """An attempt failed: show `phase` and try again later, backing off a little more."""
    failures = state.failures + 1
    new = replace(state, phase=phase, failures=failures)
    return new, [RetryLater(state.generation, failures)]
