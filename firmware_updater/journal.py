"""The install journal: the updater's state, written (atomically, fsynced) before each step.

States, in order, with the action each one licenses (the action happens only after the state
is on disk, so after a power cut the journal names the step that may be half done, and every
step is idempotent):

    idle          nothing in progress
    downloading   prepare the inactive slot, stream + verify + write the payload; checkpoints
                  (offset, tar state, writer state) are recorded within this state
    written       every chunk verified and fsynced -> write the slot's manifest.json
    armed         the slot is complete -> mark it to be tried once (backend.mark_tried)
    rebooting     -> one-shot try boot (Pi: reboot "0 tryboot"; directory: restart)
    trying        the new slot started (seen at boot) -> wait for the commit
    committing    the new version reached the gate -> make the tried slot the default
    committed     done
    rolling_back  -> back to the default slot
    rolled_back   done: the previous slot runs again; `reason` says why
    failed        done: refused or failed before the new slot ever booted; `reason` says why

SLOTS_DIR/updater/journal.json holds the record: the source, the bundle's manifest digest (a
resumed install re-reads and re-verifies the header, and continues only if it is the same bundle),
the target slot, and for `downloading` the last checkpoint.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from batm_common.atomic import atomic_write, ensure_private_dir
from batm_common.quarantine import Replacement, quarantine
from firmware_updater.faults import crash_point

IDLE = "idle"
DOWNLOADING = "downloading"
WRITTEN = "written"
ARMED = "armed"
REBOOTING = "rebooting"
TRYING = "trying"
COMMITTING = "committing"
COMMITTED = "committed"
ROLLING_BACK = "rolling_back"
ROLLED_BACK = "rolled_back"
FAILED = "failed"

STATES = (IDLE, DOWNLOADING, WRITTEN, ARMED, REBOOTING, TRYING, COMMITTING, COMMITTED,
          ROLLING_BACK, ROLLED_BACK, FAILED)
TERMINAL = frozenset({IDLE, COMMITTED, ROLLED_BACK, FAILED})
BEFORE_BOOT = frozenset({DOWNLOADING, WRITTEN, ARMED})
HISTORY_LIMIT = 32
DAMAGED_FIELD = "journal_damaged"  # in the record that replaced a damaged journal: where it went


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Journal:
    def __init__(self, slots_dir: Path | str) -> None:
        self.directory = Path(slots_dir) / "updater"
        self.path = self.directory / "journal.json"

    def load(self) -> dict | None:
        """The record; None before the first install. A damaged journal is quarantined and
        replaced by a `failed` record naming it (DAMAGED_FIELD), so it never blocks the next
        install; Installer.resume() rolls back a try boot it can no longer judge."""
        try:
            record = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            return self._replace_damaged(f"unreadable ({exc})")
        if not isinstance(record, dict) or record.get("state") not in STATES:
            return self._replace_damaged("it has no valid state")
        return record

    def _replace_damaged(self, why: str) -> dict:
        kept = quarantine(self.path, why, Replacement.RECREATED)
        record = {"state": FAILED, "updated": now(), DAMAGED_FIELD: kept.moved_to,
                  "reason": f"the install journal was damaged ({why}); it was moved to "
                            f"{Path(kept.moved_to).name} and nothing is in progress now",
                  "history": [{"state": FAILED, "at": now()}]}
        self._write(record)
        return record

    def _write(self, record: dict) -> None:
        ensure_private_dir(self.directory)
        atomic_write(self.path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())

    def transition(self, record: dict, state: str, **fields: object) -> dict:
        """Record `state` durably; only then may the caller act on it."""
        history = [*record.get("history", []), {"state": state, "at": now()}][-HISTORY_LIMIT:]
        new = record | fields | {"state": state, "updated": now(), "history": history}
        self._write(new)
        crash_point(state)
        return new

    def checkpoint(self, record: dict, **fields: object) -> dict:
        """Record progress within the current state (no new state, no crash point)."""
        new = record | fields | {"updated": now()}
        self._write(new)
        return new
