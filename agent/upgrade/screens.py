"""The screens of a staged upgrade: terminal_unpaired and upgrading (wording from the seed)."""

from __future__ import annotations

from agent.hardware import TerminalFacts
from agent.upgrade.states import UPGRADE_PHASES, TerminalUnpaired, Upgrading
from batm_common.screen_ids import ScreenId

__all__ = ["UPGRADE_PHASES", "upgrade_screen"]


def upgrade_screen(phase: TerminalUnpaired | Upgrading, facts: TerminalFacts) -> dict:
    if isinstance(phase, TerminalUnpaired):
        text = (f"Version {facts.version} is too old to pair with this server. The server "
                "upgrades this terminal automatically")
        if phase.offer is not None:
            text += f": version {phase.offer.version} is about to be installed."
        else:
            text += "; it will start shortly."
        return {"screen": ScreenId.TERMINAL_UNPAIRED, "title": "Error: Terminal unpaired",
                "text": text, "detail": phase.detail}
    if phase.restarting:
        text = f"Version {phase.version} is installed. Restarting into it. Do not power off."
    else:
        text = (f"Installing version {phase.version} (step {phase.step} of {phase.steps}). "
                "Do not power off.")
    return {"screen": ScreenId.UPGRADING, "title": "Upgrading", "text": text,
            "progress": phase.progress, "step": phase.step, "steps": phase.steps,
            "detail": "Do not power off"}
