"""State scripts, after Mender's: executables run at well-defined points of an install.

If SLOTS_DIR/updater.json names a "hooks_dir", then after the journal records a state and
before the updater acts on it, `<hooks_dir>/<state>` is run if it exists and is executable,
with BATM_FW_STATE, BATM_FW_VERSION, BATM_FW_SLOT and BATM_FW_SLOTS_DIR in its environment.
A hook that exits non-zero vetoes the step: before the new slot has booted that fails the
install (the running slot untouched); while trying or committing it rolls back. A power cut
can make a hook run twice for the same state, so hooks must be idempotent (as Mender's).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from firmware_updater.errors import FirmwareError

HOOK_TIMEOUT = 300


class HookError(FirmwareError):
    """A state script vetoed the step."""


def run_hook(hooks_dir: Path | None, state: str, env: dict[str, str]) -> None:
    if hooks_dir is None:
        return
    script = Path(hooks_dir) / state
    if not (script.is_file() and os.access(script, os.X_OK)):
        return
    try:
        done = subprocess.run([str(script)], env=os.environ | env, timeout=HOOK_TIMEOUT,
                              check=False, capture_output=True, text=True)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HookError(f"hook {script} could not run ({exc})") from exc
    if done.returncode:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise HookError(f"hook {script} refused state {state} (exit {done.returncode}"
                        + (f": {detail[-1]}" if detail else "") + ")")
