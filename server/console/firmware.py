"""The console's firmware page: the catalog, the minimum version to pair, the upgrade graph, and
the terminals upgrading now (step i of n, percent, since when) with the concurrency limit; an
admin of all locations adds a bundle (refused with the catalog's reason: not signed by a trusted
key, or a payload a terminal would refuse) and changes the policy. Both are audited.

The catalog and the policy are the whole fleet's; the terminals upgrading are shown within the
user's locations only.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from firmware_updater.manifest import valid_version
from server.console.audit import OK, AuditLog
from server.console.permissions import Action, Principal
from server.db.terminals import Terminal
from server.errors import ServiceError, bad_request
from server.firmware.catalog import Catalog, CatalogError
from server.firmware.gate import UpgradeGate


def _unavailable() -> ServiceError:
    return ServiceError(503, "firmware_unavailable", "this server runs no firmware catalog")


class FirmwareDesk:
    def __init__(self, sessions: sessionmaker, audit: AuditLog,
                 gate: UpgradeGate | None = None):
        self._sessions = sessions
        self._audit = audit
        self._gate = gate

    @property
    def _catalog(self) -> Catalog:
        if self._gate is None:
            raise _unavailable()
        return self._gate.catalog

    def overview(self, principal: Principal) -> dict:
        """Catalog, policy, upgrade graph, and the user's terminals upgrading now."""
        catalog = self._catalog
        assert self._gate is not None
        bundles = [b.to_json() for b in catalog.bundles()]
        upgrading = self._gate.upgrading()
        with self._sessions() as session:
            locations = dict(session.execute(select(Terminal.serial, Terminal.location).where(
                Terminal.serial.in_([u["serial"] for u in upgrading]))).all())
        mine = [u | {"location": locations.get(u["serial"])} for u in upgrading
                if u["serial"] in locations and principal.sees(locations[u["serial"]])]
        return {
            "min_pair_version": catalog.min_pair_version(),
            "bundles": bundles,
            "graph": [{"from": r, "to": b["version"], "bundle": b["id"]}
                      for b in bundles for r in b["install_from"]],
            "upgrading": mine,
            "slots_in_use": sum(1 for u in upgrading if u["holds_slot"]),
            "max_concurrent": self._gate.max_concurrent,
        }

    def _audited(self, principal: Principal, source: str | None, action: Action,
                 detail: str, work):
        try:
            principal.require(action)
            result = work()
        except CatalogError as exc:
            self._audit.record(principal.name, action, "refused", source=source,
                               detail=f"{detail}: {exc}"[:500])
            raise ServiceError(422, "bundle_refused", str(exc)) from exc
        except ServiceError as exc:
            self._audit.record(principal.name, action, exc.code, source=source,
                               detail=f"{detail}: {exc.message}"[:500])
            raise
        self._audit.record(principal.name, action, OK, source=source, detail=detail)
        return result

    def add_bundle(self, principal: Principal, source: str | None, path: Path,
                   name: str) -> dict:
        """Verify and add an uploaded bundle (at `path`, a temporary file)."""
        def work() -> dict:
            try:
                return self._catalog.add(path).to_json()
            except CatalogError as exc:  # the catalog names the file: say the one uploaded
                raise CatalogError(str(exc).replace(str(path), name[:100])) from exc

        return self._audited(principal, source, Action.FIRMWARE_ADD, f"bundle {name[:100]}",
                             work)

    def set_policy(self, principal: Principal, source: str | None, version: object) -> int:
        text = str(version).strip() if version is not None else ""
        number = int(text) if text.isdigit() and len(text) == 8 else None
        if number is None or not valid_version(number):
            raise bad_request(f"minimum version: {text!r} is not a YYYYMMDD version")
        return self._audited(principal, source, Action.FIRMWARE_POLICY,
                             f"minimum version to pair {number}",
                             lambda: self._catalog.set_min_pair_version(number))
