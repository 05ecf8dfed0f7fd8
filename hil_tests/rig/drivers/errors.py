"""What drivers raise: failures that carry what a person needs to see in the test report."""

from __future__ import annotations

import subprocess


class CommandFailed(AssertionError):
    """A product command exited non-zero; keeps its exit status and output."""

    def __init__(self, proc: subprocess.CompletedProcess):
        self.returncode = proc.returncode
        self.stdout = proc.stdout or ""
        self.stderr = proc.stderr or ""
        command = " ".join(str(a) for a in proc.args)
        super().__init__(
            f"`{command}` exited {proc.returncode}: {(self.stderr or self.stdout).strip()}"
        )


class ScreenTimeout(AssertionError):
    """The terminal did not show the expected screen in time; keeps the last screen seen."""

    def __init__(self, expected: str, timeout: float, last_screen: dict | None, how: str = ""):
        self.expected = expected
        self.last_screen = last_screen
        shown = last_screen.get("screen") if isinstance(last_screen, dict) else None
        detail = last_screen.get("detail") if isinstance(last_screen, dict) else None
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{expected!r} did not show within {timeout:g}s{how}; the screen is {shown!r}{extra}"
        )
