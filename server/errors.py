"""The one error type of the server's operations: what went wrong, for machines and people.

Every refusal carries the HTTP status the APIs answer with, the machine code of docs/protocol.md
and a sentence naming the problem; the CLI prints the sentence, the APIs send
{"error": code, "message": sentence}.
"""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}  # e.g. the server's time on a clock_skew refusal

    def as_json(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}

    def __repr__(self) -> str:
        return f"ServiceError({self.status}, {self.code!r}, {self.message!r})"


def bad_request(message: str) -> ServiceError:
    return ServiceError(400, "bad_request", message)


def unknown_terminal(serial: str) -> ServiceError:
    return ServiceError(404, "unknown_terminal", f"there is no terminal with serial {serial!r}")


def unknown_request() -> ServiceError:
    return ServiceError(
        404, "unknown_request",
        "this pairing request does not exist (it was replaced or expired): start again with hello",
    )


def bad_signature(reason: str) -> ServiceError:
    return ServiceError(401, "bad_signature", reason)
