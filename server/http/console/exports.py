"""The monitor's downloads as HTTP answers: CSV streamed as it is made, .xlsx written to a private
temporary file off the event loop (XlsxWriter's constant_memory mode), then streamed from it and
deleted. Both carry the view's filters and order; the rows come from Fleet.export, within the
user's locations."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from server.console.export import csv_chunks, write_xlsx

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def csv_response(rows: Iterable[dict]) -> StreamingResponse:
    return StreamingResponse(csv_chunks(rows), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="terminals.csv"'})


async def xlsx_response(rows: Iterable[dict]) -> FileResponse:
    handle, name = tempfile.mkstemp(prefix="batm-export-", suffix=".xlsx")  # 0600
    os.close(handle)
    path = Path(name)
    try:
        await asyncio.to_thread(write_xlsx, rows, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(path, media_type=XLSX, filename="terminals.xlsx",
                        background=BackgroundTask(path.unlink, missing_ok=True))
