"""Refuse oversized request bodies before they are read into memory.

The gate faces the network and no protocol message comes near a few kilobytes, so anything
larger is refused with 413 instead of being buffered whole first.
"""

from __future__ import annotations

import json

from batm_common.digits import decimal
from server.errors import ServiceError

DEFAULT_LIMIT = 64 * 1024


class BodyLimit:
    """ASGI middleware: 413 {"error": "too_large"} for bodies over `limit` bytes."""

    def __init__(self, app, limit: int = DEFAULT_LIMIT, large: dict[str, int] | None = None):
        self.app = app
        self.limit = limit
        self.large = large or {}  # path prefix -> its own limit (log archive uploads)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        limit = next((n for prefix, n in self.large.items() if path.startswith(prefix)),
                     self.limit)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (
                (size := decimal(declared.decode("latin-1"))) is None or size > limit):
            return await self._refuse(send, limit)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # chunked, without a Content-Length
                    raise self._error(limit)
            return message

        return await self.app(scope, limited_receive, send)

    @staticmethod
    def _error(limit: int) -> ServiceError:
        return ServiceError(413, "too_large", f"the request body is over {limit} bytes")

    async def _refuse(self, send, limit: int) -> None:
        body = json.dumps(self._error(limit).as_json()).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})
