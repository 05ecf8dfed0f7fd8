"""The bundle file: one file, read front to back, so it can be streamed from a socket.

    offset          size     content
    0               8        magic b"BATMFW1\\n"
    8               4        M, the manifest length, big-endian (at most 1 MiB)
    12              M        the manifest: canonical JSON (manifest.py) - the signed bytes
    12+M            576      signature table: 8 entries of key id (8 bytes) + Ed25519 signature
                             (64 bytes) over b"batm-firmware-manifest-v1\\n" + manifest;
                             unused entries are all zero, used entries come first
    12+M+576        P        the payload: an uncompressed POSIX (pax) tar of the slot's files,
                             exactly manifest.payload_size bytes; nothing may follow it

The signature table has a fixed size so `sign` adds a signature in place (no rewrite of a 1 GB
payload) and the payload offset never depends on how many keys signed. The payload is an
uncompressed tar: a tar's bytes map 1:1 onto the install's progress, so a checkpoint is a byte
offset plus a few fields of parser state (gzip's inflate state cannot be saved); the installer's
throughput is bounded by SHA-256 and the disk, not by inflate; and `payload_size` bounds exactly
how much can be written to a slot (no decompression bombs). Compress on the wire instead.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batm_common.atomic import fsync_dir
from firmware_updater.errors import BundleError
from firmware_updater.manifest import (
    MIN_CHUNK_SIZE,
    Manifest,
    VersionRange,
    default_chunk_size,
    utc_now,
)
from firmware_updater.trust import sign_manifest

MAGIC = b"BATMFW1\n"
PREFIX = struct.Struct(">8sI")
MAX_MANIFEST_BYTES = 1 << 20
SIGNATURE_SLOTS = 8
KEY_ID_BYTES, SIGNATURE_BYTES = 8, 64
ENTRY_BYTES = KEY_ID_BYTES + SIGNATURE_BYTES
TABLE_BYTES = SIGNATURE_SLOTS * ENTRY_BYTES
RESERVED_NAMES = frozenset({"manifest.json"})  # the installer writes the slot's manifest.json


@dataclass(frozen=True)
class Header:
    manifest_bytes: bytes
    signatures: tuple[tuple[str, bytes], ...]

    @property
    def size(self) -> int:
        """Bytes before the payload, i.e. the payload's offset in the bundle."""
        return PREFIX.size + len(self.manifest_bytes) + TABLE_BYTES

    @property
    def digest(self) -> str:
        """Identifies the bundle's content (signatures may be added without changing it)."""
        return hashlib.sha256(self.manifest_bytes).hexdigest()

    def encode(self) -> bytes:
        return (PREFIX.pack(MAGIC, len(self.manifest_bytes)) + self.manifest_bytes
                + encode_signature_table(self.signatures))


def encode_signature_table(signatures: tuple[tuple[str, bytes], ...]) -> bytes:
    if len(signatures) > SIGNATURE_SLOTS:
        raise BundleError(f"a bundle holds at most {SIGNATURE_SLOTS} signatures")
    table = b"".join(bytes.fromhex(kid) + sig for kid, sig in signatures)
    return table + bytes(TABLE_BYTES - len(table))


def parse_signature_table(raw: bytes) -> tuple[tuple[str, bytes], ...]:
    signatures: list[tuple[str, bytes]] = []
    for index in range(SIGNATURE_SLOTS):
        entry = raw[index * ENTRY_BYTES:(index + 1) * ENTRY_BYTES]
        if not any(entry):
            if any(raw[(index + 1) * ENTRY_BYTES:]):
                raise BundleError(f"signature table: entry {index} is empty but a later one is not")
            break
        kid = entry[:KEY_ID_BYTES].hex()
        if any(kid == other for other, _ in signatures):
            raise BundleError(f"signature table: key {kid} signed twice")
        signatures.append((kid, entry[KEY_ID_BYTES:]))
    return tuple(signatures)


def read_exact(read: Callable[[int], bytes], size: int, what: str) -> bytes:
    parts, wanted = [], size
    while wanted:
        piece = read(wanted)
        if not piece:
            got = size - wanted
            raise BundleError(f"truncated: the bundle ends inside the {what} "
                              f"({got} of {size} bytes)")
        parts.append(piece)
        wanted -= len(piece)
    return b"".join(parts)


def read_header(read: Callable[[int], bytes]) -> Header:
    """Read magic, manifest and signature table; leave the stream at the payload."""
    magic, length = PREFIX.unpack(read_exact(read, PREFIX.size, "header"))
    if magic != MAGIC:
        raise BundleError("not a firmware bundle (bad magic; expected BATMFW1)")
    if not 2 <= length <= MAX_MANIFEST_BYTES:
        raise BundleError(f"header: manifest length {length} is out of range "
                          f"(at most {MAX_MANIFEST_BYTES} bytes)")
    manifest_bytes = read_exact(read, length, "manifest")
    signatures = parse_signature_table(read_exact(read, TABLE_BYTES, "signature table"))
    return Header(manifest_bytes, signatures)


# -- building and signing (the build machine) ------------------------------------------------

def _tar_members(src: Path) -> list[tuple[str, Path, os.stat_result]]:
    members = []
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            path = Path(root) / name
            rel = path.relative_to(src).as_posix()
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise BundleError(f"{path}: file names must be UTF-8") from exc
            if rel in RESERVED_NAMES:
                raise BundleError(f"{path}: {rel} is reserved (the installer writes the slot's "
                                  "manifest.json from the bundle manifest); remove it")
            st = path.lstat()
            if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                raise BundleError(f"{path}: slots hold regular files and directories only "
                                  "(no symlinks, devices or fifos)")
            members.append((rel, path, st))
    return members


class _CountingWriter:
    def __init__(self, raw) -> None:
        self.raw, self.size = raw, 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.size += len(data)
        return len(data)


def write_payload(src: Path, out) -> int:
    """Write a deterministic pax tar of src's files to `out`; return its size."""
    counter = _CountingWriter(out)
    with tarfile.open(fileobj=counter, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, path, st in _tar_members(src):
            info = tarfile.TarInfo(rel)
            info.mode = stat.S_IMODE(st.st_mode) & 0o755
            info.mtime = int(st.st_mtime)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = st.st_size
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
    return counter.size


def hash_payload(f, size: int, chunk_size: int) -> tuple[str, tuple[str, ...]]:
    whole, chunks, left = hashlib.sha256(), [], size
    while left:
        data = f.read(min(chunk_size, left))
        if not data:
            raise BundleError("truncated: the payload ended early while hashing")
        whole.update(data)
        chunks.append(hashlib.sha256(data).hexdigest())
        left -= len(data)
    return whole.hexdigest(), tuple(chunks)


def build(src: Path | str, out: Path | str, version: int, hardware: list[str],
          install_from: list[VersionRange], chunk_size: int | None = None) -> Manifest:
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise BundleError(f"source directory {src} does not exist")
    if not out.parent.is_dir():
        raise BundleError(f"output directory {out.parent} does not exist")
    tmp_payload = out.with_name(f".{out.name}.payload-{os.getpid()}")
    tmp_bundle = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with open(tmp_payload, "w+b") as payload:
            size = write_payload(src, payload)
            chunk_size = chunk_size or default_chunk_size(size)
            if chunk_size < MIN_CHUNK_SIZE or chunk_size & (chunk_size - 1):
                raise BundleError(f"chunk size must be a power of two ≥ {MIN_CHUNK_SIZE}")
            payload.seek(0)
            whole, chunks = hash_payload(payload, size, chunk_size)
            manifest = Manifest.from_json(Manifest(
                version=version, hardware=tuple(hardware), install_from=tuple(install_from),
                payload_size=size, payload_sha256=whole, chunk_size=chunk_size,
                chunk_sha256=chunks, created=utc_now()).to_json())  # validate what we write
            with open(tmp_bundle, "wb") as bundle:
                bundle.write(Header(manifest.canonical_bytes(), ()).encode())
                payload.seek(0)
                while data := payload.read(1 << 20):
                    bundle.write(data)
                bundle.flush()
                os.fsync(bundle.fileno())
        os.replace(tmp_bundle, out)
        fsync_dir(out.parent)
        return manifest
    finally:
        tmp_payload.unlink(missing_ok=True)
        tmp_bundle.unlink(missing_ok=True)


def add_signature(path: Path | str, key) -> str:
    """Sign the bundle's manifest with `key`, in place (the payload is not rewritten)."""
    try:
        with open(path, "r+b") as f:
            header = read_header(f.read)
            Manifest.from_bytes(header.manifest_bytes)  # never sign something we cannot read
            kid, signature = sign_manifest(key, header.manifest_bytes)
            if any(kid == other for other, _ in header.signatures):
                raise BundleError(f"the bundle is already signed by key {kid}")
            if len(header.signatures) >= SIGNATURE_SLOTS:
                raise BundleError(f"the bundle already holds {SIGNATURE_SLOTS} signatures")
            f.seek(PREFIX.size + len(header.manifest_bytes) + ENTRY_BYTES * len(header.signatures))
            f.write(bytes.fromhex(kid) + signature)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise BundleError(f"cannot sign {path} ({exc.strerror})") from exc
    return kid


def describe(path: Path | str, verify_payload: bool = False) -> dict:
    """What `inspect` shows: manifest, signatures, and whether the file is complete."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            header = read_header(f.read)
            manifest = Manifest.from_bytes(header.manifest_bytes)
            file_size = os.fstat(f.fileno()).st_size
            expected = header.size + manifest.payload_size
            report = {
                "bundle": str(path),
                "manifest": manifest.to_json() | {
                    "chunk_sha256": f"{manifest.chunk_count} digests"},
                "signatures": [kid for kid, _ in header.signatures],
                "payload_offset": header.size,
                "file_size": file_size,
                "complete": file_size == expected,
            }
            if file_size != expected:
                report["problem"] = (
                    f"truncated by {expected - file_size} bytes" if file_size < expected
                    else f"oversize: {file_size - expected} bytes after the payload")
            if verify_payload and file_size >= expected:
                whole, chunks = hash_payload(f, manifest.payload_size, manifest.chunk_size)
                report["payload_verified"] = (whole == manifest.payload_sha256
                                              and chunks == manifest.chunk_sha256)
    except OSError as exc:
        raise BundleError(f"cannot read {path} ({exc.strerror})") from exc
    return report
