"""Who calls the console's API: the user an `Authorization: Bearer` token acts as.

No token → 401 `unauthenticated`; an unknown one → 401 `bad_token`, counted against the caller's
address like a failed login, so guessing tokens locks the address out (429). The API takes
no cookies: a browser's ambient session could otherwise be ridden by another site (CSRF).
"""

from __future__ import annotations

from fastapi import Request

from server.console.actions import Actor
from server.console.lockouts import address_key
from server.console.service import ConsoleService
from server.errors import ServiceError


def source_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def unauthenticated(code: str, message: str) -> ServiceError:
    return ServiceError(401, code, message)


def bearer_actor(console: ConsoleService, request: Request) -> Actor:
    """The caller as an Actor; ServiceError 401/429 when they cannot be recognised."""
    header = request.headers.get("authorization")
    if not header:
        raise unauthenticated("unauthenticated", "this API needs a token: send "
                              "'Authorization: Bearer <token>' (batm-server token create USER)")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated("unauthenticated",
                              "the Authorization header must be 'Bearer <token>'")
    source = source_address(request)
    keys = [address_key(source)]
    console.lockouts.check(keys)
    principal = console.tokens.principal(token.strip())
    if principal is None:
        console.lockouts.fail(keys)
        raise unauthenticated("bad_token", "this token is not valid (it was never made, or its "
                                           "user was disabled)")
    return Actor(principal, source)
