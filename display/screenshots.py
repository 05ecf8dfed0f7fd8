"""Screenshots of the display, written so that a watcher never sees half a PNG.

The HIL suite and `batm-sim demo` watch the screenshot directory for NNN-<screen_id>.png files.
Each file is written under a temporary name that does not end in .png and then renamed into
place (rename is atomic within a directory), so a file with the final name is always complete.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pygame

_NUMBERED = re.compile(r"^(\d+)-.*\.png$")


def save_png_atomic(surface: pygame.Surface, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            # namehint tells pygame the format, since the temporary name has no .png suffix.
            pygame.image.save(surface, f, "screenshot.png")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class ScreenshotWriter:
    """Numbers screenshots 001-<id>.png, 002-<id>.png, … in the order screens appeared.

    Numbering continues after the highest number already in the directory, so a restarted
    display (e.g. after a firmware upgrade) adds to the sequence instead of overwriting it.
    latest.png always holds the current screen; screen.json describes it (save_status).
    """

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in self.directory.iterdir()
                   if (m := _NUMBERED.match(p.name))]
        self.next_number = max(numbers, default=0) + 1

    def save(self, surface: pygame.Surface, screen_id: str) -> Path:
        safe_id = re.sub(r"[^A-Za-z0-9_]+", "_", screen_id).strip("_") or "unknown"
        path = self.directory / f"{self.next_number:03d}-{safe_id}.png"
        self.next_number += 1
        save_png_atomic(surface, path)
        save_png_atomic(surface, self.directory / "latest.png")
        return path

    def save_status(self, status: dict) -> Path:
        """screen.json: what the current screen says, as data, for the HIL suite (an admin
        page's title, message and field text; never PIN digits). Written atomically."""
        path = self.directory / "screen.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(status, ensure_ascii=False, indent=1) + "\n")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path
