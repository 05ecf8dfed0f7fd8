"""The firmware catalog: signed bundles the operator added, the pairing policy, the upgrade graph.

Bundles are files in data_dir/firmware/ with a row each in firmware_bundles. `add` copies the
bundle into the catalog directory first and verifies *the copy* (signature by a key in
data_dir/firmware-keys/, complete file, every payload chunk, and the payload read as a terminal
reads it: firmware_updater.payload_check), so what the gate serves is exactly what was checked.
The copy is renamed into place only once it verified.

The upgrade graph (architecture §4, hawkBit's requiredMigrationStep): a bundle is an edge from every
version its manifest's `install_from` ranges contain to its own version. `plan` returns the path
from a running version to one ≥ the policy's minimum with the fewest steps, taking the highest
version at each step on ties. Terminals check every step again themselves.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from batm_common.atomic import ensure_private_dir, fsync_dir
from batm_common.clock import utcnow
from firmware_updater.bundle import describe, read_header
from firmware_updater.errors import FirmwareError
from firmware_updater.manifest import Manifest, VersionRange, valid_version
from firmware_updater.payload_check import check_payload
from firmware_updater.trust import load_trusted_keys, verify_manifest
from server.db.firmware import FirmwareBundle, FirmwarePolicy, min_pair_version

CATALOG_DIR = "firmware"
KEYS_DIR = "firmware-keys"


class CatalogError(Exception):
    """The operator's request cannot be done; str() says why in one line."""


@dataclass(frozen=True)
class Bundle:
    id: int
    version: int
    hardware: tuple[str, ...]
    install_from: tuple[VersionRange, ...]
    size: int
    sha256: str
    path: Path

    def installable_from(self, version: int, hardware: str | None) -> bool:
        if hardware is not None and hardware not in self.hardware:
            return False
        return self.version > version and any(r.contains(version) for r in self.install_from)

    def to_json(self) -> dict:
        return {"id": self.id, "version": self.version, "hardware": list(self.hardware),
                "install_from": [str(r) for r in self.install_from], "size": self.size,
                "sha256": self.sha256, "file": self.path.name}


def plan(bundles: list[Bundle], version: int, min_version: int,
         hardware: str | None = None) -> list[Bundle] | None:
    """The bundles to install in order ([] when `version` is new enough; None: no path)."""

    @functools.cache
    def steps_from(v: int) -> float:
        if v >= min_version:
            return 0
        options = [steps_from(b.version) for b in bundles if b.installable_from(v, hardware)]
        return 1 + min(options, default=float("inf"))  # versions only grow: no cycles

    if steps_from(version) == float("inf"):
        return None
    path, current = [], version
    while current < min_version:
        best = max((b for b in bundles if b.installable_from(current, hardware)),
                   key=lambda b: (-steps_from(b.version), b.version, b.id))
        path.append(best)
        current = best.version
    return path


class Catalog:
    def __init__(self, sessions: sessionmaker, data_dir: Path | str):
        self._sessions = sessions
        self.data_dir = Path(data_dir)
        self.directory = self.data_dir / CATALOG_DIR
        self.keys_dir = self.data_dir / KEYS_DIR

    # ------------------------------------------------------------------ policy

    def min_pair_version(self) -> int:
        with self._sessions() as session:
            return min_pair_version(session)

    def set_min_pair_version(self, version: int) -> int:
        if not valid_version(version):
            raise CatalogError(f"the minimum version to pair must be a YYYYMMDD version, "
                               f"not {version!r}")
        with self._sessions() as session, session.begin():
            policy = session.get(FirmwarePolicy, 1)
            if policy is None:
                session.add(FirmwarePolicy(id=1, min_pair_version=version, updated_at=utcnow()))
            else:
                policy.min_pair_version, policy.updated_at = version, utcnow()
        return version

    # ------------------------------------------------------------------ bundles

    def bundles(self) -> list[Bundle]:
        with self._sessions() as session:
            rows = session.scalars(select(FirmwareBundle).order_by(FirmwareBundle.id)).all()
            return [self._bundle(row) for row in rows]

    def bundle(self, bundle_id: int) -> Bundle | None:
        with self._sessions() as session:
            row = session.get(FirmwareBundle, bundle_id)
            return self._bundle(row) if row else None

    def _bundle(self, row: FirmwareBundle) -> Bundle:
        return Bundle(
            id=row.id, version=row.version, hardware=tuple(json.loads(row.hardware)),
            install_from=tuple(VersionRange(r["min"], r["max"])
                               for r in json.loads(row.install_from)),
            size=row.size, sha256=row.sha256, path=self.directory / row.filename)

    def add(self, source: Path | str) -> Bundle:
        """Copy, verify the copy, then publish it: a refused bundle leaves nothing behind."""
        source = Path(source)
        if not source.is_file():
            raise CatalogError(f"{source}: no such bundle file")
        try:
            trusted = load_trusted_keys(self.keys_dir)
        except FirmwareError as exc:
            raise CatalogError(f"{exc}; put the firmware signers' public keys (*.pub) in "
                               f"{self.keys_dir}") from exc
        ensure_private_dir(self.directory, mode=0o755)
        tmp = self.directory / f".add-{os.getpid()}-{source.name[:40]}"
        try:
            digest = hashlib.sha256()
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                while block := src.read(1 << 20):
                    digest.update(block)
                    dst.write(block)
                dst.flush()
                os.fsync(dst.fileno())
            with open(tmp, "rb") as f:
                header = read_header(f.read)
            kid = verify_manifest(header.manifest_bytes, list(header.signatures), trusted)
            manifest = Manifest.from_bytes(header.manifest_bytes)
            report = describe(tmp, verify_payload=True)
            if not report["complete"]:
                raise CatalogError(f"{source}: {report['problem']}")
            if not report.get("payload_verified"):
                raise CatalogError(f"{source}: the payload does not match the signed manifest")
            # Read the payload as a terminal would (issue 13, item 8): a signed bundle whose
            # tar every terminal refuses ('..', absolute paths, links, devices, garbage) is
            # refused here, not offered to the fleet.
            check_payload(tmp)
            return self._publish(tmp, header.digest, digest.hexdigest(), manifest, kid)
        except FirmwareError as exc:
            raise CatalogError(f"{source}: {exc}") from exc
        except OSError as exc:
            raise CatalogError(f"{source}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def _publish(self, tmp: Path, manifest_digest: str, sha256: str, manifest: Manifest,
                 kid: str) -> Bundle:
        with self._sessions() as session, session.begin():
            existing = session.scalars(select(FirmwareBundle).where(
                FirmwareBundle.manifest_digest == manifest_digest)).first()
            if existing is not None:
                raise CatalogError(f"this bundle (version {existing.version}) is already in the "
                                   f"catalog as #{existing.id}")
            filename = f"{manifest.version}-{manifest_digest[:16]}.fw"
            os.replace(tmp, self.directory / filename)
            fsync_dir(self.directory)
            row = FirmwareBundle(
                version=manifest.version, hardware=json.dumps(list(manifest.hardware)),
                install_from=json.dumps([r.to_json() for r in manifest.install_from]),
                size=(self.directory / filename).stat().st_size, sha256=sha256,
                manifest_digest=manifest_digest, signed_by=kid, filename=filename,
                added_at=utcnow())
            session.add(row)
            session.flush()
            return self._bundle(row)

    def plan(self, version: int, hardware: str | None = None) -> list[Bundle] | None:
        return plan(self.bundles(), version, self.min_pair_version(), hardware)


def copy_keys(keys: list[Path], data_dir: Path) -> None:
    """Trust these firmware signers' public keys (the simulator's setup)."""
    target = Path(data_dir) / KEYS_DIR
    ensure_private_dir(target, mode=0o755)
    for key in keys:
        shutil.copyfile(key, target / key.name)
