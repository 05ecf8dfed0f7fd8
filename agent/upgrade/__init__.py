"""Staged firmware upgrades, as the gate drives them (architecture §4, docs/protocol.md §2).

  states   the upgrade's phases, events and effects (pure data; agent/machine/upgrade.py moves them)
  offer    the gate's `upgrade_required` answer, parsed into an UpgradeOffer or UpgradeWait
  adapter  the imperative side: runs firmware_updater in-process (install, commit, roll back)
  screens  the terminal_unpaired and upgrading screens
"""
