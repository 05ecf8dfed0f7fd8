"""The gate's firmware side: too-old hellos get the next upgrade step; who may download a bundle.

A hello from a known terminal whose version is below the policy's minimum is answered 200
`upgrade_required` with the NEXT step of the catalog's plan only (docs/protocol.md §2). Each
offer holds one of `max_concurrent` upgrade slots, from the offer until the terminal's next hello
with another version (the step is done, or it fell back) or until `slot_timeout` passes without
the terminal asking for the bundle; a terminal that finds every slot taken is told to retry later.

The hello is unauthenticated, so slots are guarded against strangers (issue 13, item 2): a hello
claiming a version below the one the terminal last reported in a signed request (a terminal never
downgrades) gets no slot, and one source address holds at most half the slots (at least one), so
hellos from one address cannot take every slot. (Hellos are also rate-limited: http/gate.py.)

The download cannot be signed-request authenticated (the terminal is not paired, so the server
knows no key of it): it is open to a known terminal (X-BATM-Serial) holding a slot for that very
bundle. That is enough: bundles are signed, and the terminal verifies every chunk. The download
itself (HTTP Range) is http/bundle_download.py.
"""

from __future__ import annotations

import datetime

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from batm_common import signing
from batm_common.clock import iso_ms, utcnow
from batm_common.digits import decimal
from server.db.firmware import FirmwareUpgrade
from server.db.terminals import Terminal
from server.errors import ServiceError
from server.firmware.catalog import Bundle, Catalog
from server.pairing.registry import serial_problem
from server.settings import DEFAULT_MAX_CONCURRENT_UPGRADES

DEFAULT_SLOT_TIMEOUT = 900.0  # seconds without a download request before a slot is freed
BUSY_RETRY_AFTER = 15  # seconds
NO_PATH_RETRY_AFTER = 60


def bundle_url(bundle_id: int) -> str:
    return f"/api/v1/firmware/{bundle_id}/bundle"


class UpgradeGate:
    def __init__(self, sessions: sessionmaker, catalog: Catalog,
                 max_concurrent: int = DEFAULT_MAX_CONCURRENT_UPGRADES,
                 slot_timeout: float = DEFAULT_SLOT_TIMEOUT, clock=utcnow):
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._sessions = sessions
        self.catalog = catalog
        self.max_concurrent = max_concurrent
        self.slot_timeout = datetime.timedelta(seconds=slot_timeout)
        self._clock = clock
        self.max_per_source = max(1, max_concurrent // 2)
        self._slot_peers: dict[str, str] = {}  # serial → the address its offer went to
        # serial → (bundle id, bytes of it sent so far): the download's percent for the console.
        # In memory: a restart loses only the figure, the terminal's resume does not need it.
        self._sent: dict[str, tuple[int, int]] = {}

    # ------------------------------------------------------------------ hello

    def hello(self, serial: str, version: int, hardware: str | None,
              peer: str | None = None) -> dict | None:
        """The upgrade_required answer, or None when the terminal may go on to pair (or is
        unknown: the pairing code path answers that)."""
        min_version = self.catalog.min_pair_version()
        with self._sessions() as session, session.begin():
            terminal = session.get(Terminal, serial) if not serial_problem(serial) else None
            if terminal is None:
                return None
            row = session.get(FirmwareUpgrade, serial)
            now = self._clock()
            if row is not None and row.offered_from is not None and row.offered_from != version:
                self._release(row, version, now)  # a step finished (or fell back)
            if version >= min_version:
                if row is not None:
                    session.delete(row)
                return None
            path = self.catalog.plan(version, hardware)
            base = {"status": "upgrade_required", "min_version": min_version}
            if not path:
                return base | {"next": None, "retry_after": NO_PATH_RETRY_AFTER, "message": (
                    f"no firmware in the catalog upgrades version {version} to {min_version} or "
                    "newer; the operator must add firmware (batm-server firmware add)")}
            if terminal.version is not None and version < terminal.version:
                return base | {"next": None, "retry_after": NO_PATH_RETRY_AFTER, "message": (
                    f"terminal {serial!r} reported version {terminal.version} in a signed "
                    f"request and now says {version}; firmware never goes back, so this hello "
                    "gets no upgrade slot")}
            holds = self._holds_slot(row, now)
            if not holds and self._slots_taken(session, serial, now) >= self.max_concurrent:
                return base | {"next": None, "retry_after": BUSY_RETRY_AFTER, "message": (
                    f"the server is upgrading {self.max_concurrent} terminals already; "
                    "this terminal waits for its turn")}
            source = peer or "?"
            if not holds and self._source_slots(session, source, now) >= self.max_per_source:
                return base | {"next": None, "retry_after": BUSY_RETRY_AFTER, "message": (
                    f"{self.max_per_source} terminals at this address are upgrading already; "
                    "this terminal waits for its turn")}
            self._slot_peers[serial] = source
            step, steps, row = self._step(session, row, serial, version, path, hardware, now)
            nxt = path[0]
            row.bundle_id, row.offered_from, row.offered_at = nxt.id, version, now
            row.updated_at = now
            return base | {"step": step, "steps": steps, "next": {
                "version": nxt.version, "url": bundle_url(nxt.id), "size": nxt.size,
                "sha256": nxt.sha256}, "message": (
                f"version {version} is too old to pair (minimum {min_version}): upgrading to "
                f"{nxt.version}, step {step} of {steps}")}

    def _step(self, session, row: FirmwareUpgrade | None, serial: str, version: int,
              path: list, hardware: str | None, now) -> tuple[int, int, FirmwareUpgrade]:
        """Step i of n counted from where this terminal's upgrade began (an archaic terminal
        shows 1 of 2, then 2 of 2), restarting the count when it left that plan."""
        if row is not None:
            origin = self.catalog.plan(row.origin_version, hardware) or []
            versions = [row.origin_version, *(b.version for b in origin)]
            if version in versions[:-1] and len(origin) == versions.index(version) + len(path):
                return versions.index(version) + 1, len(origin), row
            session.delete(row)
            session.flush()
        row = FirmwareUpgrade(serial=serial, origin_version=version, completed_steps=0,
                              updated_at=now)
        session.add(row)
        return 1, len(path), row

    def _release(self, row: FirmwareUpgrade, version: int, now) -> None:
        if row.bundle_id is not None:
            bundle = self.catalog.bundle(row.bundle_id)
            if bundle is not None and bundle.version == version:
                row.completed_steps += 1
        row.bundle_id = row.offered_from = row.offered_at = None
        row.updated_at = now

    def _holds_slot(self, row: FirmwareUpgrade | None, now) -> bool:
        return (row is not None and row.offered_at is not None
                and row.offered_at > now - self.slot_timeout)

    def _slots_taken(self, session, serial: str, now) -> int:
        rows = session.scalars(select(FirmwareUpgrade).where(
            FirmwareUpgrade.serial != serial)).all()
        return sum(1 for r in rows if self._holds_slot(r, now))

    def _source_slots(self, session, source: str, now) -> int:
        rows = session.scalars(select(FirmwareUpgrade)).all()
        return sum(1 for r in rows
                   if self._holds_slot(r, now) and self._slot_peers.get(r.serial) == source)

    def sent(self, serial: str, bundle_id: int, upto: int) -> None:
        """The download of `bundle_id` to `serial` reached byte `upto` (bundle_download.py)."""
        self._sent[serial] = (bundle_id, upto)

    def upgrading(self) -> list[dict]:
        """Terminals with an upgrade plan: step i of n, the download's percent, since when."""
        now = self._clock()
        with self._sessions() as session:
            views = []
            for r in session.scalars(select(FirmwareUpgrade).order_by(FirmwareUpgrade.serial)):
                bundle = self.catalog.bundle(r.bundle_id) if r.bundle_id is not None else None
                plan = self.catalog.plan(r.origin_version) or []
                sent_id, sent = self._sent.get(r.serial, (None, 0))
                percent = (min(100, int(sent * 100 / bundle.size))
                           if bundle is not None and sent_id == bundle.id and bundle.size else 0)
                views.append({
                    "serial": r.serial, "origin_version": r.origin_version,
                    "bundle_id": r.bundle_id, "holds_slot": self._holds_slot(r, now),
                    "completed_steps": r.completed_steps,
                    "step": min(r.completed_steps + 1, max(len(plan), 1)),
                    "steps": len(plan), "to_version": bundle.version if bundle else None,
                    "percent": percent,
                    "since": iso_ms(r.offered_at) if r.offered_at else None,
                    "updated_at": iso_ms(r.updated_at)})
            return views

    # ------------------------------------------------------------------ download

    def authorize_download(self, serial: str | None, bundle_id: str) -> Bundle:
        number = decimal(bundle_id, max_digits=9)  # ids are small; SQLite ints are 64-bit
        if number is None or (bundle := self.catalog.bundle(number)) is None:
            shown = bundle_id if len(bundle_id) <= 40 else bundle_id[:40] + "…"
            raise ServiceError(404, "unknown_bundle", f"there is no firmware bundle {shown!r}")
        if not serial or serial_problem(serial):
            raise ServiceError(403, "no_upgrade_slot", f"the download needs the "
                               f"{signing.HEADER_SERIAL} header of a terminal being upgraded")
        now = self._clock()
        with self._sessions() as session, session.begin():
            row = session.get(FirmwareUpgrade, serial)
            if row is None or row.bundle_id != bundle.id or not self._holds_slot(row, now):
                raise ServiceError(403, "no_upgrade_slot", f"terminal {serial!r} was not offered "
                                   f"bundle {bundle.id} (or its offer timed out): say hello first")
            row.offered_at = now  # downloading keeps the slot
        return bundle
