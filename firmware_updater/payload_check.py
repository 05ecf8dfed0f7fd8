"""Read a bundle's payload as a terminal would, without installing it: for whoever publishes one.

A signed bundle whose payload every terminal refuses (a member escaping the slot with `..` or an
absolute path, a link, a device node, the slot's own manifest.json, a tar that is not one) would
fail on each terminal that downloads it, one after another. The server's catalog and the build
machine run this check first, so such a bundle is refused once, with the terminal's own reason.

The payload goes through the same verify-then-parse path as an install: every chunk is hashed
and compared with its signed digest, then fed to the same refusing tar reader, whose sink only
counts. Memory stays at one chunk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from firmware_updater.bundle import RESERVED_NAMES, read_exact, read_header
from firmware_updater.errors import BundleError, PayloadError
from firmware_updater.manifest import Manifest
from firmware_updater.tarstream import TarReader


@dataclass
class PayloadSummary:
    files: int = 0
    directories: int = 0
    bytes: int = 0


class _CountingSink:
    """A MemberSink that writes nothing: the tar reader's refusals are the check."""

    def __init__(self) -> None:
        self.summary = PayloadSummary()

    def directory(self, path: str, mode: int) -> None:
        self.summary.directories += 1

    def begin_file(self, path: str, mode: int, size: int) -> None:
        self.summary.files += 1

    def write(self, data: memoryview) -> None:
        self.summary.bytes += len(data)

    def end_file(self) -> None:
        pass


def check_payload(path: Path | str) -> PayloadSummary:
    """What the payload holds; BundleError or PayloadError with the terminal's reason if a terminal
    would refuse it. Signatures are not checked here (trust is the caller's policy)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            header = read_header(f.read)
            manifest = Manifest.from_bytes(header.manifest_bytes)
            sink = _CountingSink()
            reader = TarReader(sink, reserved=RESERVED_NAMES)
            whole = hashlib.sha256()
            for index in range(manifest.chunk_count):
                low, high = manifest.chunk_span(index)
                chunk = read_exact(f.read, high - low, f"payload (chunk {index})")
                if hashlib.sha256(chunk).hexdigest() != manifest.chunk_sha256[index]:
                    raise PayloadError(f"payload chunk {index} does not match its signed digest")
                whole.update(chunk)
                reader.feed(memoryview(chunk))
            if f.read(1):
                raise BundleError("oversize: there are bytes after the payload")
    except OSError as exc:
        raise BundleError(f"cannot read {path} ({exc.strerror})") from exc
    if whole.hexdigest() != manifest.payload_sha256:
        raise PayloadError("the payload does not match its signed digest")
    reader.finish()
    return sink.summary
