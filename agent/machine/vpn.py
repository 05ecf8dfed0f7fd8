"""Transitions of the VPN step (pure); agent/machine/dispatch.py hands these events over.

    CheckedIn(vpn=True) → ConnectingMaster, uses_vpn   (credentials first if none are stored)
    credentials ready   → BringUpVpn                   (`master_step`)
    VpnUp               → ConnectMaster
    VpnConfigMissing    → VpnError(missing)        RetryLater (backoff) → fresh check-in → …
    VpnDown             → VpnError(kind, reason)   RetryLater
    RetryDue            → fresh check-in (pairing.py), the last VPN error still on the screen

Leaving scenario A (dropped credentials, a new server, a check-in that says scenario B) tears
the tunnel down: the dispatcher passes every transition through `after`, which adds TearDownVpn.
"""

from __future__ import annotations

from dataclasses import replace

from agent.machine.state import (
    AgentState,
    Connecting,
    ConnectingMaster,
    ConnectMaster,
    DropCredentials,
    Effect,
    Event,
    InService,
    SaveServer,
    Transition,
    failed,
)
from agent.vpn.states import (
    MISSING,
    BringUpVpn,
    TearDownVpn,
    VpnConfigMissing,
    VpnDown,
    VpnError,
    VpnUp,
)


def master_step(state: AgentState) -> Effect:
    """What follows the credentials: the tunnel first in scenario A, else the broker."""
    gen = state.generation
    return BringUpVpn(gen) if state.uses_vpn else ConnectMaster(gen)


def transition(state: AgentState, event: Event) -> Transition:
    if getattr(event, "generation", None) != state.generation or not state.uses_vpn:
        return state, []
    phase = state.phase
    match event:
        case VpnUp() if isinstance(phase, ConnectingMaster):
            return state, [ConnectMaster(state.generation)]
        case VpnConfigMissing(reason=reason) if isinstance(phase, ConnectingMaster):
            error = VpnError(MISSING, reason)
            return failed(replace(state, vpn_error=error), error)
        case VpnDown(kind=kind, reason=reason, endpoint=endpoint) if isinstance(
                phase, ConnectingMaster | InService):
            error = VpnError(kind, reason, endpoint)
            return failed(replace(state, vpn_error=error), error)
    return state, []


def after(old: AgentState, new: AgentState, effects: list[Effect]) -> Transition:
    """Tear the tunnel down when the terminal leaves scenario A's path; forget a VPN error
    once it no longer applies."""
    leaving = any(isinstance(e, DropCredentials | SaveServer) for e in effects)
    if leaving and new.uses_vpn:
        new = replace(new, uses_vpn=False)
    if old.uses_vpn and not new.uses_vpn and not any(
            isinstance(e, TearDownVpn) for e in effects):
        effects = [*effects, TearDownVpn(new.generation)]
    if new.vpn_error is not None and not (
            new.uses_vpn and isinstance(new.phase, Connecting | ConnectingMaster | VpnError)):
        new = replace(new, vpn_error=None)
    return new, effects
