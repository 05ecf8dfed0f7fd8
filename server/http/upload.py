"""Streaming a large signed upload to disk: bounded in size, in memory and in concurrency.

Issue 13, item 3: the log-upload route used to read the whole body before checking the
signature, so six parallel 60 MiB POSTs with a garbage signature took the server from 95 MB to
525 MB. Now the route checks the signed headers first (the signature covers the body's SHA-256,
sent as X-BATM-Content-SHA256: batm_common.signing), only then takes one of a few upload slots
and streams the body to a file while hashing it, refusing it past its limit or when it does not
match the signed digest. Memory per upload is one chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from pathlib import Path

from fastapi import Request

from server.errors import ServiceError, bad_signature

UPLOADS_AT_ONCE = 2
SLOT_WAIT = 30.0  # seconds an authenticated upload waits for a slot before 503


class UploadSlots:
    def __init__(self, at_once: int = UPLOADS_AT_ONCE, wait: float = SLOT_WAIT):
        self._semaphore = asyncio.Semaphore(at_once)
        self._wait = wait

    @contextlib.asynccontextmanager
    async def slot(self):
        try:
            await asyncio.wait_for(self._semaphore.acquire(), self._wait)
        except TimeoutError as exc:
            raise ServiceError(503, "busy", "the server is receiving other uploads; "
                                            "try again in a minute") from exc
        try:
            yield
        finally:
            self._semaphore.release()


def declared_length(request: Request, limit: int) -> None:
    """413 at once when the Content-Length already says the body is over `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() \
            and int(declared) > limit:
        raise ServiceError(413, "too_large", f"the upload is {declared} bytes, over {limit}")


async def stream_to_file(request: Request, path: Path, limit: int,
                         signed_sha256: str) -> tuple[int, str]:
    """(size, sha256) of the body written to `path` (0600); the file is removed and a
    ServiceError raised when it is over `limit` or does not match the signed digest."""
    digest, size = hashlib.sha256(), 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ServiceError(413, "too_large", f"the upload is over {limit} bytes")
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != signed_sha256:
            raise bad_signature("the body does not match its signed SHA-256 header")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()
