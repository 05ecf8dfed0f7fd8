"""Transitions of the staged upgrade (pure); agent/machine/dispatch.py hands these events over.

    hello → upgrade_required + next  → TerminalUnpaired(offer)   InstallUpgrade
          → upgrade_required, null   → TerminalUnpaired(detail)  WaitForUpgrade(retry_after)
    UpgradeProgress                  → Upgrading(step, steps, %)
    UpgradeInstalled                 → Upgrading(restarting)     RestartIntoNewSlot
    UpgradeFailed                    → TerminalUnpaired(reason)  RetryLater (backoff)

After the restart the updater reports a slot on trial (UpgradeStartup(trying=True)): the first
answer of the gate to the new version (pairing, upgrade_required, checked in; `reached_gate`)
commits it — the dispatcher adds CommitSlot and lets the answer take its ordinary course; if none
comes within TRIAL_SECONDS the slot is rolled back (RollBackSlot).
"""

from __future__ import annotations

from dataclasses import replace

from agent.machine.state import AgentState, CheckedIn, Event, PairingOffered, Transition, failed
from agent.upgrade.states import (
    InstallUpgrade,
    RestartIntoNewSlot,
    RollBackSlot,
    TerminalUnpaired,
    TrialExpired,
    UpgradeBusy,
    UpgradeFailed,
    UpgradeInstalled,
    UpgradeOffered,
    UpgradeProgress,
    UpgradeStartup,
    Upgrading,
    WaitForUpgrade,
    WatchTrial,
)

TRIAL_SECONDS = 300.0
# Answers that prove the new version reached the gate (an error answer proves nothing).
REACHED_GATE = (PairingOffered, CheckedIn, UpgradeOffered, UpgradeBusy)


def reached_gate(state: AgentState, event: Event) -> bool:
    """Whether `event` is the gate's first answer to a slot on trial: time to commit it."""
    return (state.trying_upgrade and isinstance(event, REACHED_GATE)
            and getattr(event, "generation", None) == state.generation)


def transition(state: AgentState, event: Event,
               trial_seconds: float = TRIAL_SECONDS) -> Transition:
    match event:
        case UpgradeStartup(trying=trying, note=note):
            effects = [WatchTrial(state.generation, trial_seconds)] if trying else []
            return replace(state, trying_upgrade=trying, upgrade_note=note), effects
        case TrialExpired() if state.trying_upgrade:
            reason = (f"the new version did not reach the gate within {trial_seconds:g} s")
            return replace(state, trying_upgrade=False), [RollBackSlot(state.generation, reason)]
        case TrialExpired():
            return state, []
    if getattr(event, "generation", None) != state.generation:
        return state, []
    gen = state.generation
    match event:
        case UpgradeOffered(offer=offer):
            phase = TerminalUnpaired(detail=state.upgrade_note, offer=offer)
            return replace(state, phase=phase, failures=0), [InstallUpgrade(gen, offer)]
        case UpgradeBusy(retry_after=seconds, message=message):
            phase = TerminalUnpaired(detail=message)
            return replace(state, phase=phase, failures=0), [WaitForUpgrade(gen, seconds)]
        case UpgradeProgress(percent=percent) if (step := _step(state)) is not None:
            phase = Upgrading(*step, progress=max(0, min(100, percent)))
            return replace(state, phase=phase, upgrade_note=None), []
        case UpgradeInstalled() if (step := _step(state)) is not None:
            phase = Upgrading(*step, progress=100, restarting=True)
            return replace(state, phase=phase), [RestartIntoNewSlot(gen)]
        case UpgradeFailed(reason=reason):
            note = f"the upgrade failed: {reason}"
            return failed(replace(state, upgrade_note=note), TerminalUnpaired(detail=note))
    return state, []


def _step(state: AgentState) -> tuple[int, int, int] | None:
    """(step, steps, version) of the step being installed, if one is."""
    phase = state.phase
    if isinstance(phase, TerminalUnpaired) and phase.offer is not None:
        return phase.offer.step, phase.offer.steps, phase.offer.version
    if isinstance(phase, Upgrading) and not phase.restarting:
        return phase.step, phase.steps, phase.version
    return None
