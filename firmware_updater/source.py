"""Where the bundle's bytes come from: a local file or an HTTP(S) URL.

Both are opened at an absolute byte offset of the bundle, which is how an install resumes: the
installer asks for the bytes after its last checkpoint and nothing before them is fetched again.
Over HTTP that is a `Range: bytes=N-` request; if the connection drops mid-stream the reader
re-requests from the byte it has reached (a few times, with back-off) without the caller noticing.
A server that ignores Range (200 instead of 206) is tolerated by discarding the prefix.
Nothing is stored on disk: there is no temporary copy of the bundle.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from batm_common.digits import decimal
from firmware_updater.errors import SourceError

HTTP_RETRIES = 5
HTTP_TIMEOUT = 30.0


class Stream(Protocol):
    size: int | None  # total bundle size when known (file size, Content-Range total)

    def read(self, n: int) -> bytes: ...
    def readinto(self, buffer: memoryview) -> int: ...
    def close(self) -> None: ...


def is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def open_source(spec: str, offset: int = 0) -> Stream:
    return HttpStream(spec, offset) if is_url(spec) else FileStream(spec, offset)


class FileStream:
    def __init__(self, path: str, offset: int) -> None:
        try:
            self._file = open(Path(path), "rb", buffering=0)  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise SourceError(f"cannot open bundle {path} ({exc.strerror})") from exc
        self.size = os.fstat(self._file.fileno()).st_size
        self._file.seek(offset)

    def read(self, n: int) -> bytes:
        return self._file.read(n) or b""

    def readinto(self, buffer: memoryview) -> int:
        return self._file.readinto(buffer) or 0

    def close(self) -> None:
        self._file.close()


class HttpStream:
    """A bundle over HTTP(S) from `offset` on.

    Callers that need more than a plain download pass hooks rather than copying this class: a
    configured `client` (TLS trust, headers), `check_response` (e.g. a key pin; raise SourceError
    to refuse), `on_position` (progress) and `cancel` (stops retries and waits at once).
    """

    def __init__(
        self, url: str, offset: int, *, client=None,
        check_response: Callable[[object], None] | None = None,
        on_position: Callable[[int, int | None], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        import httpx  # imported here: a file install need not pay for it (start-up time, RSS)

        self._httpx = httpx
        self.url, self.offset, self.size = url, offset, None
        self._client = client or httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=True)
        self._check_response = check_response
        self._on_position = on_position
        self._cancel = cancel or threading.Event()
        self._response = None
        self._chunks = None
        self._pending = memoryview(b"")
        self._connect()

    def _connect(self) -> None:
        headers = {"Accept-Encoding": "identity"}
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
        request = self._client.build_request("GET", self.url, headers=headers)
        try:
            response = self._client.send(request, stream=True)
        except self._httpx.HTTPError as exc:
            raise SourceError(f"cannot download {self.url} ({exc})") from exc
        if self._check_response is not None:
            try:
                self._check_response(response)
            except SourceError:
                response.close()
                raise
        if response.status_code == 206:
            start, total = _content_range(response.headers.get("content-range", ""))
            if start != self.offset:
                response.close()
                raise SourceError(f"{self.url}: server resumed at byte {start}, "
                                  f"asked for {self.offset}")
            self.size = total
        elif response.status_code == 200:
            length = response.headers.get("content-length")
            self.size = decimal(length)
        else:
            detail = response.read()[:200].decode("utf-8", "replace").strip()
            response.close()
            raise SourceError(f"cannot download {self.url}: HTTP {response.status_code} "
                              f"{detail}".rstrip())
        self._response, self._chunks = response, response.iter_raw()  # pieces as they arrive
        if response.status_code == 200 and self.offset:
            self._discard(self.offset)

    def _discard(self, count: int) -> None:
        while count:
            piece = next(self._chunks, b"")
            if not piece:
                raise SourceError(f"{self.url}: ended before byte {self.offset}")
            count -= len(piece)
            if count < 0:
                self._pending, count = memoryview(piece)[count:], 0

    def _next_piece(self) -> bytes:
        for attempt in range(HTTP_RETRIES + 1):
            if self._cancel.is_set():
                raise SourceError("the install was cancelled")
            try:
                return next(self._chunks, b"")
            except self._httpx.HTTPError as exc:
                if attempt == HTTP_RETRIES:
                    raise SourceError(f"download of {self.url} interrupted at byte "
                                      f"{self.offset} ({exc})") from exc
                self._response.close()
                self._cancel.wait(min(0.2 * 2 ** attempt, 5.0))
                self._connect()  # Range request from the byte reached
        return b""

    def readinto(self, buffer: memoryview) -> int:
        if not self._pending:
            self._pending = memoryview(self._next_piece())
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.offset += n
        if self._on_position is not None:
            self._on_position(self.offset, self.size)
        return n

    def read(self, n: int) -> bytes:
        buffer = bytearray(n)
        got = self.readinto(memoryview(buffer))
        return bytes(buffer[:got])

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        self._client.close()


def _content_range(value: str) -> tuple[int, int | None]:
    try:
        _unit, _, rest = value.partition(" ")
        span, _, total = rest.partition("/")
        start = int(span.split("-")[0])
        return start, decimal(total)
    except ValueError as exc:
        raise SourceError(f"bad Content-Range {value!r}") from exc
