"""Damaged state files: moved aside for a post-mortem, and remembered until someone reports them.

A terminal in the field meets torn SD-card sectors and hand edits. Whatever file the agent or the
updater keeps, when it cannot be used, it is renamed to `NAME.corrupt-YYYYmmddTHHMMSSZ` next to
where it was (never deleted: the operator may want it), the loader carries on with a backup, a new
file, or a refusal, and one `Quarantined` record says which. A file that stays in place would be
read, and refused, at every start: that is how a crash loop begins.

The records wait in this process until `take_reports()` hands them to the one who can tell the
server (the agent records each as a `STATE_FILE_EVENT` in its outbox), because the loaders run
long before the link to the server exists, and some (the updater's) know nothing of it.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from batm_common.atomic import fsync_dir

log = logging.getLogger(__name__)

STATE_FILE_EVENT = "agent.state_file_quarantined"  # the event type the agent reports
SUFFIX = ".corrupt-"


class Replacement(StrEnum):
    """What took the damaged file's place."""

    RESTORED = "restored"    # the last good copy (a mirrored backup) is in use again
    RECREATED = "recreated"  # a new, empty or freshly generated file; what it held is lost
    REFUSED = "refused"      # nothing safe can replace it; the feature refuses until repaired


@dataclass(frozen=True)
class Quarantined:
    file: str          # the path that was damaged
    moved_to: str      # where the damaged bytes are kept now
    reason: str        # why it could not be used, as the loader saw it
    replacement: Replacement
    at: str            # when, UTC ISO 8601

    def to_json(self) -> dict:
        return asdict(self) | {"replacement": self.replacement.value}


_lock = threading.Lock()
_unreported: list[Quarantined] = []


def quarantine(path: Path | str, reason: str, replacement: Replacement) -> Quarantined:
    """Rename the damaged `path` aside (durably) and remember it for the next report."""
    path = Path(path)
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}{SUFFIX}{stamp}")
    n = 1
    while aside.exists():  # two damaged copies within a second must not overwrite each other
        n += 1
        aside = path.with_name(f"{path.name}{SUFFIX}{stamp}-{n}")
    os.replace(path, aside)
    fsync_dir(path.parent)
    record = Quarantined(str(path), str(aside), reason, replacement,
                         now.isoformat(timespec="seconds").replace("+00:00", "Z"))
    log.error("%s is damaged (%s): moved it to %s; %s", path, reason, aside.name,
              _CONSEQUENCE[replacement])
    with _lock:
        _unreported.append(record)
    return record


def take_reports() -> list[Quarantined]:
    """The quarantines not yet handed out, oldest first; each is handed out once."""
    with _lock:
        taken = list(_unreported)
        _unreported.clear()
    return taken


_CONSEQUENCE = {
    Replacement.RESTORED: "the last good copy is in use again",
    Replacement.RECREATED: "a new one was made",
    Replacement.REFUSED: "what it served is refused until it is repaired",
}
