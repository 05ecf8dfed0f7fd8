"""The gate's bundle download: GET /api/v1/firmware/{id}/bundle, whole or by HTTP Range.

Who may download is the upgrade gate's decision (firmware/gate.py); this streams the file in
TLS-record-sized blocks, so that a slow link delivers — and the terminal shows — steady progress,
and a download cut off resumes where it stopped (architecture §4).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from batm_common import signing
from server.errors import ServiceError
from server.firmware.gate import UpgradeGate

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
BLOCK = 16 << 10  # one TLS record


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `bytes=` range, None for the whole file; 416 if bad."""
    if header is None:
        return None
    match = RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise _unsatisfiable(size, f"Range {header!r} is not a single bytes=FIRST-[LAST] range")
    first, last = match.groups()
    if first == "":  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise _unsatisfiable(size, f"Range {header!r} is outside the bundle's {size} bytes")
    return start, end


def _unsatisfiable(size: int, message: str) -> ServiceError:
    error = ServiceError(416, "range_not_satisfiable", message)
    error.headers = {"Content-Range": f"bytes */{size}"}  # type: ignore[attr-defined]
    return error


def _file_part(path: os.PathLike, start: int, end: int,
               sent: Callable[[int], None] = lambda _upto: None) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start + 1
        while left > 0 and (block := f.read(min(BLOCK, left))):
            left -= len(block)
            yield block
            sent(end + 1 - left)  # the console's percent (UpgradeGate.upgrading)


def install_bundle_download(app: FastAPI, upgrades: UpgradeGate) -> None:
    @app.get("/api/v1/firmware/{bundle_id}/bundle")
    async def bundle(bundle_id: str, request: Request) -> Response:
        serial = request.headers.get(signing.HEADER_SERIAL)
        found = upgrades.authorize_download(serial, bundle_id)

        def sent(upto: int) -> None:
            upgrades.sent(serial, found.id, upto)
        size = found.path.stat().st_size
        try:
            span = parse_range(request.headers.get("range"), size)
        except ServiceError as exc:
            return JSONResponse(exc.as_json(), status_code=416, headers=exc.headers)
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{found.sha256}"'}
        if span is None:
            return StreamingResponse(_file_part(found.path, 0, size - 1, sent), 200, media_type=(
                "application/octet-stream"), headers=headers | {"Content-Length": str(size)})
        start, end = span
        headers |= {"Content-Range": f"bytes {start}-{end}/{size}",
                    "Content-Length": str(end - start + 1)}
        return StreamingResponse(_file_part(found.path, start, end, sent), 206,
                                 media_type="application/octet-stream", headers=headers)
