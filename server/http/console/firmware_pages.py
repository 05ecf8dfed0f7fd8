"""The firmware page: the catalog, the minimum version to pair, the upgrade graph and the
terminals upgrading now (live), with the concurrency limit; an admin of all locations adds a
bundle (uploaded, verified by the catalog, refused with its reason) and changes the policy."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.console.service import ConsoleService
from server.errors import ServiceError
from server.http.console.bearer import source_address
from server.http.console.web import checked_form, page_session, render

BUNDLE_LIMIT = 512 * 1024 * 1024  # bytes of an uploaded bundle (app.py's body limit)


def firmware_router(console: ConsoleService) -> APIRouter:
    router = APIRouter()

    def page(request: Request, session, status: int = 200, **context) -> Response:
        return render("firmware.html", request, status=status, session=session,
                      f=console.firmware.overview(session.principal), **context)

    @router.get("/firmware")
    async def firmware(request: Request) -> Response:
        return page(request, page_session(console, request))

    @router.get("/firmware/upgrading")
    async def upgrading(request: Request) -> Response:
        """The upgrades table alone: what the page's live refresh swaps in."""
        session = page_session(console, request)
        return render("_upgrading.html", request, session=session,
                      f=console.firmware.overview(session.principal))

    async def answered(request: Request, session, work) -> Response:
        """The page with what `work` (a coroutine returning a sentence) did, or its refusal."""
        try:
            message = await work()
        except ServiceError as exc:
            if exc.status == 401:
                raise
            return page(request, session, exc.status, message=exc.message,
                        message_kind="error")
        return page(request, session, message=message)

    @router.post("/firmware/bundles")
    async def add_bundle(request: Request) -> Response:
        session, form = await checked_form(console, request)
        upload = form.get("bundle")

        async def work() -> str:
            if upload is None or isinstance(upload, str) or not upload.filename:
                raise ServiceError(400, "bad_request", "bundle: choose a bundle file to add")
            handle, name = tempfile.mkstemp(prefix="batm-bundle-", suffix=".fw")
            path = Path(name)
            try:
                with os.fdopen(handle, "wb") as out:
                    while block := await upload.read(1 << 20):
                        out.write(block)
                added = await asyncio.to_thread(
                    console.firmware.add_bundle, session.principal, source_address(request),
                    path, upload.filename)
            finally:
                path.unlink(missing_ok=True)
            return (f"Added bundle #{added['id']}: version {added['version']}, installable "
                    f"from {', '.join(added['install_from'])}.")

        return await answered(request, session, work)

    @router.post("/firmware/policy")
    async def set_policy(request: Request) -> Response:
        session, form = await checked_form(console, request)

        async def work() -> str:
            version = console.firmware.set_policy(session.principal, source_address(request),
                                                  form.get("min_pair_version"))
            return (f"Minimum version to pair: {version}. Terminals below it are upgraded at "
                    "their next hello.")

        return await answered(request, session, work)

    return router
