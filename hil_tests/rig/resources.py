"""Resources: *where* the parts of a rig are, and nothing about how to use them.

The dataclasses live in `sim.rigfile` because the simulator writes the same file it validates;
this module is the HIL suite's name for them. A real-Pi rig file has the same shape (the
simulator's extension fields are optional), so `load_rig` serves both.
"""

from __future__ import annotations

from pathlib import Path

from sim.rigfile import RigFile, RigFileError, ServerResource, TerminalResource, load_rig_file

__all__ = ["RigFile", "RigFileError", "ServerResource", "TerminalResource", "load_rig"]


def load_rig(path: Path | str) -> RigFile:
    """Load and validate rig.json; RigFileError names the bad field."""
    return load_rig_file(path)
