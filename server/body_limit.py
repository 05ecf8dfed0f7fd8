"""Refuse oversized request bodies before they are read into memory.

The gate faces the network and no protocol message comes near a few kilobytes, so anything
larger is refused with 413 instead of being buffered whole first.
"""

from __future__ import annotations

import json

from server.errors import ServiceError

DEFAULT_LIMIT = 64 * 1024


class BodyLimit:
    """ASGI middleware: 413 {"error": "too_large"} for bodies over `limit` bytes."""

    def __init__(self, app, limit: int = DEFAULT_LIMIT):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self._refuse(send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:  # chunked, without a Content-Length
                    raise self._error()
            return message

        return await self.app(scope, limited_receive, send)

    def _error(self) -> ServiceError:
        return ServiceError(413, "too_large", f"the request body is over {self.limit} bytes")

    async def _refuse(self, send) -> None:
        body = json.dumps(self._error().as_json()).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})
