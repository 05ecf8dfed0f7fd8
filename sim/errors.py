"""The supervisor's one refusal: a request it could not carry out (docs/protocol.md §5)."""

from __future__ import annotations


class ActionError(RuntimeError):
    """A request the supervisor could not carry out; str() goes back to the client."""
