"""The bundle manifest: what a bundle is, which terminals may install it, and how to verify it.

The manifest is canonical JSON (sorted keys, no spaces, ASCII) and exactly those bytes are signed,
so there is one encoding of a manifest and nothing to normalise before checking a signature.

The payload is covered twice by the manifest: `payload_sha256` is the SHA-256 of the whole payload
(what `sha256sum` of the payload prints, for catalogues and humans), and `chunk_sha256` lists the
SHA-256 of each `chunk_size` piece of it (like RAUC's verity bundles or casync's chunk index).
The installer verifies every chunk *before* any of its bytes reach the tar parser or the slot, and
because a chunk digest does not depend on the bytes before it, an interrupted install can resume
at a chunk boundary without a temporary copy and without re-reading what was already installed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from batm_common.digits import decimal
from firmware_updater.errors import BundleError, PolicyError

FORMAT_VERSION = 1
MIN_VERSION, MAX_VERSION = 19700101, 99991231
HARDWARE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
CREATED_PATTERN = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
MIN_CHUNK_SIZE = 4096
MAX_CHUNK_SIZE = 16 << 20  # bounds the installer's memory: it holds two chunks at a time
MAX_CHUNKS = 8192
MIN_PAYLOAD_SIZE = 1024  # an empty tar archive is two zero blocks
FIELDS = ("format_version", "version", "hardware", "install_from", "payload_size",
          "payload_sha256", "chunk_size", "chunk_sha256", "created")


def valid_version(value: object) -> bool:
    return type(value) is int and MIN_VERSION <= value <= MAX_VERSION


@dataclass(frozen=True)
class VersionRange:
    """Inclusive range of running versions allowed to install a bundle directly (None: open)."""

    min: int | None
    max: int | None

    def contains(self, version: int) -> bool:
        return (self.min is None or version >= self.min) and (
            self.max is None or version <= self.max)

    def __str__(self) -> str:
        if self.min is not None and self.min == self.max:
            return str(self.min)
        return f"{self.min or ''}-{self.max or ''}"

    def to_json(self) -> dict:
        return {"max": self.max, "min": self.min}

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """`20230801-20231231`, `20230801-` (and newer), `-20231231`, or one version."""
        low, sep, high = text.strip().partition("-")
        bounds = [low, high] if sep else [low, low]
        values: list[int | None] = []
        for part in bounds:
            if part == "":
                values.append(None)
            elif (value := decimal(part, max_digits=8)) is not None and valid_version(value):
                values.append(value)
            else:
                raise ValueError(f"install-from range {text!r}: {part!r} is not a YYYYMMDD version")
        if values == [None, None]:
            raise ValueError(f"install-from range {text!r} has no bound")
        low_v, high_v = values
        if low_v is not None and high_v is not None and low_v > high_v:
            raise ValueError(f"install-from range {text!r} is empty (min > max)")
        return cls(low_v, high_v)

    @classmethod
    def from_json(cls, data: object, where: str) -> VersionRange:
        if not isinstance(data, dict) or set(data) != {"min", "max"}:
            raise BundleError(f"manifest field {where} must be an object with min and max")
        for key in ("min", "max"):
            if data[key] is not None and not valid_version(data[key]):
                raise BundleError(
                    f"manifest field {where}.{key} must be a YYYYMMDD version or null")
        if data["min"] is None and data["max"] is None:
            raise BundleError(f"manifest field {where} has neither min nor max")
        if data["min"] is not None and data["max"] is not None and data["min"] > data["max"]:
            raise BundleError(f"manifest field {where} is empty (min > max)")
        return cls(data["min"], data["max"])


@dataclass(frozen=True)
class Manifest:
    version: int
    hardware: tuple[str, ...]
    install_from: tuple[VersionRange, ...]
    payload_size: int
    payload_sha256: str
    chunk_size: int
    chunk_sha256: tuple[str, ...]
    created: str
    format_version: int = FORMAT_VERSION

    @property
    def chunk_count(self) -> int:
        return len(self.chunk_sha256)

    def chunk_span(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, self.payload_size)

    def to_json(self) -> dict:
        return {
            "chunk_sha256": list(self.chunk_sha256),
            "chunk_size": self.chunk_size,
            "created": self.created,
            "format_version": self.format_version,
            "hardware": list(self.hardware),
            "install_from": [r.to_json() for r in self.install_from],
            "payload_sha256": self.payload_sha256,
            "payload_size": self.payload_size,
            "version": self.version,
        }

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except UnicodeDecodeError as exc:
            raise BundleError("the manifest is not UTF-8 text") from exc
        except json.JSONDecodeError as exc:
            raise BundleError(f"the manifest is not JSON ({exc.msg} at byte {exc.pos})") from exc
        except RecursionError:
            # No field of a manifest nests more than two levels; this is a hostile file.
            raise BundleError("the manifest nests too deeply to be a manifest") from None
        if not isinstance(data, dict):
            raise BundleError("the manifest is not a JSON object")
        manifest = cls.from_json(data)
        if canonical_json(data) != raw:
            raise BundleError("the manifest is not in canonical form (sorted keys, no spaces)")
        return manifest

    @classmethod
    def from_json(cls, data: dict) -> Manifest:
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise BundleError(f"manifest field {unknown[0]!r} is not known to this updater")
        missing = [name for name in FIELDS if name not in data]
        if missing:
            raise BundleError(f"manifest field {missing[0]!r} is missing")
        if data["format_version"] != FORMAT_VERSION or type(data["format_version"]) is not int:
            raise BundleError(
                f"manifest field format_version is {data['format_version']!r}; "
                f"this updater reads format {FORMAT_VERSION}")
        if not valid_version(data["version"]):
            raise BundleError("manifest field version must be a YYYYMMDD integer")
        hardware = data["hardware"]
        if (not isinstance(hardware, list) or not hardware
                or not all(isinstance(h, str) and HARDWARE_PATTERN.match(h) for h in hardware)):
            raise BundleError("manifest field hardware must be a non-empty list of hardware names")
        ranges = data["install_from"]
        if not isinstance(ranges, list) or not ranges:
            raise BundleError("manifest field install_from must be a non-empty list of ranges")
        install_from = tuple(
            VersionRange.from_json(r, f"install_from[{i}]") for i, r in enumerate(ranges))
        size, chunk_size = data["payload_size"], data["chunk_size"]
        if type(size) is not int or size < MIN_PAYLOAD_SIZE or size % 512:
            raise BundleError("manifest field payload_size must be a whole number of 512-byte "
                              f"tar blocks, at least {MIN_PAYLOAD_SIZE}")
        if (type(chunk_size) is not int or chunk_size & (chunk_size - 1)
                or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE):
            raise BundleError(f"manifest field chunk_size must be a power of two from "
                              f"{MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE}")
        if not isinstance(data["payload_sha256"], str) or not HEX64.match(data["payload_sha256"]):
            raise BundleError("manifest field payload_sha256 must be 64 lowercase hex digits")
        chunks = data["chunk_sha256"]
        expected = -(-size // chunk_size)
        if not isinstance(chunks, list) or len(chunks) != expected or expected > MAX_CHUNKS:
            raise BundleError(f"manifest field chunk_sha256 must list {expected} chunk digests "
                              f"(at most {MAX_CHUNKS})")
        if not all(isinstance(c, str) and HEX64.match(c) for c in chunks):
            raise BundleError(
                "manifest field chunk_sha256 holds a digest that is not 64 hex digits")
        if not isinstance(data["created"], str) or not CREATED_PATTERN.match(data["created"]):
            raise BundleError("manifest field created must be a UTC time like 2024-01-31T12:00:00Z")
        return cls(
            version=data["version"], hardware=tuple(hardware), install_from=install_from,
            payload_size=size, payload_sha256=data["payload_sha256"], chunk_size=chunk_size,
            chunk_sha256=tuple(chunks), created=data["created"])


def canonical_json(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise BundleError(f"manifest field {key!r} appears twice")
        result[key] = value
    return result


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_chunk_size(payload_size: int) -> int:
    """At least 1 MiB, at most 8 MiB, and no more than ~1024 chunks below 8 GiB."""
    size = 1 << 20
    while size < (8 << 20) and -(-payload_size // size) > 1024:
        size <<= 1
    return size


def check_installable(manifest: Manifest, running_version: int, hardware: str) -> None:
    """The terminal's own policy (architecture §4): hardware, no downgrade, direct-install
    ranges."""
    if hardware not in manifest.hardware:
        raise PolicyError(
            f"wrong hardware: the bundle is for {', '.join(manifest.hardware)}, "
            f"this terminal is {hardware}")
    if manifest.version < running_version:
        raise PolicyError(
            f"downgrade: the bundle holds version {manifest.version}, older than the running "
            f"version {running_version}")
    if manifest.version == running_version:
        raise PolicyError(f"version {manifest.version} is already running")
    if not any(r.contains(running_version) for r in manifest.install_from):
        allowed = ", ".join(str(r) for r in manifest.install_from)
        raise PolicyError(
            f"not installable from version {running_version}: version {manifest.version} may "
            f"only be installed directly from {allowed}; install an intermediate version first")
