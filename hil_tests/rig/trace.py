"""A trace of each step a test took through the drivers, with timing.

Drivers decorate their public methods with `@step`; every call lands in the target's StepTrace
(name, arguments, duration, result or error). The conftest prints the trace of a failed test,
so a red HIL run says which step failed and how long each one before it took.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
MAX_SHOWN = 160


@dataclass
class Step:
    driver: str
    action: str
    args: str
    started: float
    duration: float | None = None
    outcome: str = "running"
    depth: int = 0


@dataclass
class StepTrace:
    steps: list[Step] = field(default_factory=list)
    origin: float = field(default_factory=time.monotonic)
    _depth: int = 0

    def begin(self, driver: str, action: str, args: str) -> Step:
        entry = Step(driver, action, args, time.monotonic(), depth=self._depth)
        self.steps.append(entry)
        self._depth += 1
        return entry

    def end(self, entry: Step, outcome: str) -> None:
        self._depth = max(0, self._depth - 1)
        entry.duration = time.monotonic() - entry.started
        entry.outcome = outcome

    def note(self, driver: str, text: str) -> None:
        entry = self.begin(driver, "note", text)
        self.end(entry, "")

    def format(self) -> str:
        lines = []
        for s in self.steps:
            at = s.started - self.origin
            took = "   …   " if s.duration is None else f"{s.duration * 1000:7.0f}ms"
            indent = "  " * s.depth
            lines.append(
                f"{at:8.3f}s {took} {indent}{s.driver}.{s.action}({s.args}) {s.outcome}".rstrip()
            )
        return "\n".join(lines)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def step(method: F) -> F:
    """Record a driver method call in `self.trace` (when the driver has one)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        trace: StepTrace | None = getattr(self, "trace", None)
        if trace is None:
            return method(self, *args, **kwargs)
        shown = ", ".join(
            [_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()]
        )
        entry = trace.begin(type(self).__name__, method.__name__, shown)
        try:
            result = method(self, *args, **kwargs)
        except BaseException as exc:
            trace.end(entry, f"!! {type(exc).__name__}: {_short(str(exc))}")
            raise
        trace.end(entry, "" if result is None else f"-> {_short(result)}")
        return result

    return wrapper  # type: ignore[return-value]
