"""Transitions of the VPN step (pure); agent/pairing.py hands these over.

    CheckedIn(vpn=True) → ConnectingMaster, uses_vpn   (credentials first if none are stored)
    credentials ready   → BringUpVpn
    VpnUp               → ConnectMaster
    VpnConfigMissing    → VpnError(missing)        RetryLater (backoff) → fresh check-in → …
    VpnDown             → VpnError(kind, reason)   RetryLater
    RetryDue            → fresh check-in (pairing.py), the last VPN error still on the screen

Leaving scenario A (dropped credentials, a new server, a check-in that says scenario B) tears
the tunnel down: TearDownVpn is added after the transition (`after`).
"""

from __future__ import annotations

from dataclasses import replace

from agent import pairing as pm
from agent.vpn.states import (
    MISSING,
    BringUpVpn,
    TearDownVpn,
    VpnConfigMissing,
    VpnDown,
    VpnError,
    VpnUp,
)


def master_step(state: pm.AgentState) -> pm.Effect:
    """What follows the credentials: the tunnel first in scenario A, else the broker."""
    gen = state.generation
    return BringUpVpn(gen) if state.uses_vpn else pm.ConnectMaster(gen)


def transition(state: pm.AgentState, event: pm.Event) -> pm.Transition:
    if getattr(event, "generation", None) != state.generation or not state.uses_vpn:
        return state, []
    phase = state.phase
    match event:
        case VpnUp() if isinstance(phase, pm.ConnectingMaster):
            return state, [pm.ConnectMaster(state.generation)]
        case VpnConfigMissing(reason=reason) if isinstance(phase, pm.ConnectingMaster):
            error = VpnError(MISSING, reason)
            return pm._failed(replace(state, vpn_error=error), error)
        case VpnDown(kind=kind, reason=reason, endpoint=endpoint) if isinstance(
                phase, pm.ConnectingMaster | pm.InService):
            error = VpnError(kind, reason, endpoint)
            return pm._failed(replace(state, vpn_error=error), error)
    return state, []


def after(old: pm.AgentState, new: pm.AgentState, effects: list) -> pm.Transition:
    """Tear the tunnel down when the terminal leaves scenario A's path; forget a VPN error
    once it no longer applies."""
    leaving = any(isinstance(e, pm.DropCredentials | pm.SaveServer) for e in effects)
    if leaving and new.uses_vpn:
        new = replace(new, uses_vpn=False)
    if old.uses_vpn and not new.uses_vpn and not any(
            isinstance(e, TearDownVpn) for e in effects):
        effects = [*effects, TearDownVpn(new.generation)]
    if new.vpn_error is not None and not (
            new.uses_vpn and isinstance(new.phase, pm.Connecting | pm.ConnectingMaster
                                        | VpnError)):
        new = replace(new, vpn_error=None)
    return new, effects
