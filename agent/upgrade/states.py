"""The staged upgrade's phases, events and effects, as data (pure).

The transitions are in agent/machine/upgrade.py; agent/machine/state.py includes these in its
unions. A terminal
too old to pair shows TerminalUnpaired ("Error: Terminal unpaired", as the operator's guide words
it) while the gate decides, then Upgrading (step i of n, percent, do not power off), restarts
into the new slot, and commits it once its hello with the new version got an answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.upgrade.offer import UpgradeOffer

# --------------------------------------------------------------------------- phases


@dataclass(frozen=True)
class TerminalUnpaired:
    """The gate will not pair this version; it upgrades the terminal (now, or when it can)."""

    detail: str | None = None
    offer: UpgradeOffer | None = None  # the step about to be installed


@dataclass(frozen=True)
class Upgrading:
    step: int
    steps: int
    version: int
    progress: int = 0
    restarting: bool = False


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class UpgradeStartup:
    """At start: the updater runs a slot on trial (commit pending) and/or has a failure to tell."""

    trying: bool
    note: str | None = None


@dataclass(frozen=True)
class TrialExpired:
    """The slot on trial did not reach the gate in time."""


@dataclass(frozen=True)
class UpgradeOffered:
    generation: int
    offer: UpgradeOffer


@dataclass(frozen=True)
class UpgradeBusy:
    generation: int
    retry_after: float
    message: str


@dataclass(frozen=True)
class UpgradeProgress:
    generation: int
    percent: int


@dataclass(frozen=True)
class UpgradeInstalled:
    """The new slot is written, verified and armed to be tried once: restart into it."""

    generation: int


@dataclass(frozen=True)
class UpgradeFailed:
    generation: int
    reason: str


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class InstallUpgrade:
    """Download the step from the gate (Range resume) into the inactive slot and arm it."""

    generation: int
    offer: UpgradeOffer


@dataclass(frozen=True)
class RestartIntoNewSlot:
    generation: int


@dataclass(frozen=True)
class CommitSlot:
    """The new version reached the gate: keep the slot on trial."""

    generation: int


@dataclass(frozen=True)
class RollBackSlot:
    generation: int
    reason: str


@dataclass(frozen=True)
class WatchTrial:
    """Answer TrialExpired after `seconds` (the bounded time a new slot has to reach the gate)."""

    generation: int
    seconds: float


@dataclass(frozen=True)
class WaitForUpgrade:
    """The gate asked to be asked again after `seconds`; answers RetryDue."""

    generation: int
    seconds: float


UPGRADE_PHASES = (TerminalUnpaired, Upgrading)
UPGRADE_EVENTS = (UpgradeStartup, TrialExpired, UpgradeOffered, UpgradeBusy, UpgradeProgress,
                  UpgradeInstalled, UpgradeFailed)
UPGRADE_EFFECTS = (InstallUpgrade, RestartIntoNewSlot, CommitSlot, RollBackSlot, WatchTrial,
                   WaitForUpgrade)

UpgradeEvent = (UpgradeStartup | TrialExpired | UpgradeOffered | UpgradeBusy | UpgradeProgress
                | UpgradeInstalled | UpgradeFailed)
UpgradeEffect = (InstallUpgrade | RestartIntoNewSlot | CommitSlot | RollBackSlot | WatchTrial
                 | WaitForUpgrade)
