"""The machine's one entry point: `transition(state, event)` routes each event to its feature;
`run(state, *events)` applies several in order (tests and replays read as the flows they follow).

    VPN events (agent/vpn/states.py)          → vpn.transition
    upgrade events (agent/upgrade/states.py)  → upgrade.transition
    everything else                           → pairing.transition

Two rules span the features, so they live here rather than in any one of them: the gate's first
answer to a slot on trial commits that slot (CommitSlot) before the answer takes its ordinary
course, and every transition passes through vpn.after, which tears the tunnel down when the
terminal leaves scenario A. The feature modules never import this one back.
"""

from __future__ import annotations

from dataclasses import replace

from agent.machine import pairing, upgrade, vpn
from agent.machine.state import AgentState, Event, Transition
from agent.upgrade.states import UPGRADE_EVENTS, CommitSlot
from agent.vpn.states import VPN_EVENTS


def transition(state: AgentState, event: Event) -> Transition:
    committing = upgrade.reached_gate(state, event)
    if committing:
        state = replace(state, trying_upgrade=False)
    if isinstance(event, VPN_EVENTS):
        new, effects = vpn.transition(state, event)
    elif isinstance(event, UPGRADE_EVENTS):
        new, effects = upgrade.transition(state, event)
    else:
        new, effects = pairing.transition(state, event)
    new, effects = vpn.after(state, new, effects)
    if committing:
        effects = [CommitSlot(state.generation), *effects]
    return new, effects


def run(state: AgentState, *events: Event) -> Transition:
    """The state after `events`, in order, and every effect they produced, in order."""
    effects: list = []
    for event in events:
        state, new_effects = transition(state, event)
        effects.extend(new_effects)
    return state, effects
