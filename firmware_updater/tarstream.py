"""A streaming tar reader whose whole state is a small JSON object, so it can be checkpointed.

Python's `tarfile` cannot resume a stream in the middle, so the installer uses this reader: it
is fed byte ranges in order, calls a MemberSink for each directory and file, and `state()` says
exactly where it is (phase, bytes left, a partial header) so a later process can continue from
the same payload offset.

It refuses by default: only regular files and directories are accepted; hard links, symlinks,
devices, fifos, sparse files and GNU/global extension headers are refused, and so are member
names that are absolute, contain `..`, are empty, or are reserved. Member modes are reduced to
at most 0755 (no set-id bits, nothing group/world-writable); owners are ignored.
"""

from __future__ import annotations

from typing import Protocol

from batm_common.digits import decimal
from batm_common.signing import b64url, unb64url
from firmware_updater.errors import PayloadError

BLOCK = 512
MAX_PAX_BYTES = 64 << 10
MAX_PATH_BYTES = 4096
REGULAR_TYPES = (b"0", b"\x00", b"7")
REFUSED_TYPES = {
    b"1": "a hard link", b"2": "a symlink", b"3": "a character device",
    b"4": "a block device", b"6": "a fifo", b"S": "a sparse file",
    b"L": "a GNU long-name header", b"K": "a GNU long-link header",
    b"g": "a global pax header", b"V": "a volume header", b"M": "a multi-volume continuation",
}
ZERO_BLOCK = bytes(BLOCK)


class MemberSink(Protocol):
    def directory(self, path: str, mode: int) -> None: ...
    def begin_file(self, path: str, mode: int, size: int) -> None: ...
    def write(self, data: memoryview) -> None: ...
    def end_file(self) -> None: ...


def safe_member_path(name: str, reserved: frozenset[str] = frozenset()) -> str:
    """The member's path relative to the slot root, or PayloadError saying why it is refused."""
    if "\x00" in name:
        raise PayloadError(f"archive member {name!r} has a NUL byte in its name")
    if name.startswith("/"):
        raise PayloadError(f"archive member {name!r} has an absolute path (escapes the slot)")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PayloadError(f"archive member {name!r} escapes the slot (..)")
    path = "/".join(parts)
    if len(path.encode()) > MAX_PATH_BYTES or any(len(p.encode()) > 255 for p in parts):
        raise PayloadError(f"archive member {name[:80]!r}… has a name that is too long")
    if path in reserved:
        raise PayloadError(f"archive member {name!r} is reserved (the installer writes it)")
    return path


def _number(field: bytes, what: str) -> int:
    if field[:1] == b"\x80":  # GNU base-256 (positive only)
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\x00", 1)[0].strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError as exc:
        raise PayloadError(f"tar header: the {what} field {text!r} is not an octal number") from exc


def parse_pax(data: bytes) -> dict[str, str]:
    records, pos = {}, 0
    while pos < len(data):
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
            record = data[pos:pos + length]
            key, value = record[space - pos + 1:-1].split(b"=", 1)
            ok = record.endswith(b"\n") and length > 0
            key_s, value_s = key.decode("utf-8"), value.decode("utf-8")
        except ValueError as exc:
            raise PayloadError("a pax extended header is malformed") from exc
        if not ok:
            raise PayloadError("a pax extended header is malformed")
        if key_s.startswith("GNU.sparse"):
            raise PayloadError("sparse files are refused (pax GNU.sparse header)")
        records[key_s] = value_s
        pos += length
    return records


class TarReader:
    """Feed payload bytes in order; the reader drives the sink. See module doc."""

    def __init__(self, sink: MemberSink, state: dict | None = None,
                 reserved: frozenset[str] = frozenset()) -> None:
        self.sink, self.reserved = sink, reserved
        state = state or {}
        self.phase: str = state.get("phase", "header")  # header | pax | data | skip | end
        self.remaining: int = state.get("remaining", 0)
        self.pad: int = state.get("pad", 0)
        self.buffer: bytes = unb64url(state.get("buffer", ""))
        self.pax: dict[str, str] = dict(state.get("pax", {}))
        self.member: str = state.get("member", "")
        self.zero_blocks: int = state.get("zero_blocks", 0)
        self.members: int = state.get("members", 0)

    def state(self) -> dict:
        return {"phase": self.phase, "remaining": self.remaining, "pad": self.pad,
                "buffer": b64url(self.buffer), "pax": self.pax, "member": self.member,
                "zero_blocks": self.zero_blocks, "members": self.members}

    def feed(self, data: memoryview) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self.phase == "header":
                take = data[pos:pos + BLOCK - len(self.buffer)]
                pos += len(take)
                self.buffer += bytes(take)
                if len(self.buffer) == BLOCK:
                    block, self.buffer = self.buffer, b""
                    self._header(block)
            elif self.phase == "data":
                take = min(self.remaining, end - pos)
                self.sink.write(data[pos:pos + take])
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self.sink.end_file()
                    self._skip_padding()
            elif self.phase == "pax":
                take = min(self.remaining, end - pos)
                self.buffer += bytes(data[pos:pos + take])
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self.pax, self.buffer = parse_pax(self.buffer), b""
                    self._skip_padding()
            elif self.phase == "skip":
                take = min(self.remaining, end - pos)
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self.phase = "header"
            else:  # end: what follows the two zero blocks must be zero padding
                if bytes(data[pos:]).count(0) != end - pos:
                    raise PayloadError("the payload has data after the end of the tar archive")
                pos = end

    def finish(self) -> None:
        if self.phase != "end":
            raise PayloadError(f"truncated: the tar archive ends inside {self._where()}")

    def _where(self) -> str:
        if self.phase == "data":
            return f"member {self.member!r} ({self.remaining} bytes missing)"
        return "its headers (no end-of-archive marker)"

    def _skip_padding(self) -> None:
        self.remaining, self.pad = self.pad, 0
        self.phase = "skip" if self.remaining else "header"

    def _header(self, block: bytes) -> None:
        if block == ZERO_BLOCK:
            self.zero_blocks += 1
            if self.zero_blocks == 2:
                self.phase = "end"
            return
        if self.zero_blocks:
            raise PayloadError("the tar archive has a lone zero block between members")
        stored = _number(block[148:156], "checksum")
        computed = sum(block[:148]) + 8 * 32 + sum(block[156:])
        if stored != computed:
            raise PayloadError(f"tar header {self.members + 1}: checksum mismatch")
        if block[257:262] != b"ustar":
            raise PayloadError(f"tar header {self.members + 1}: not a POSIX ustar header")
        kind = block[156:157]
        pax, self.pax = self.pax, {}
        name = self._name(block, pax)
        if "size" in pax:
            size = decimal(pax["size"])
            if size is None:
                raise PayloadError(f"archive member {name!r}: pax size is not a number")
        else:
            size = _number(block[124:136], "size")
        self.member = name
        if kind == b"x":
            if size > MAX_PAX_BYTES:
                raise PayloadError(f"a pax extended header of {size} bytes is too large")
            self.phase, self.remaining, self.pad = "pax", size, -size % BLOCK
            if not size:
                self._skip_padding()
            return
        if kind in REFUSED_TYPES:
            raise PayloadError(f"archive member {name!r} is {REFUSED_TYPES[kind]}; "
                               "slots hold regular files and directories only")
        mode = _number(block[100:108], "mode") & 0o755
        self.members += 1
        if kind == b"5":
            path = safe_member_path(name, self.reserved)
            if size:
                raise PayloadError(f"archive member {name!r} is a directory with content")
            if path:
                self.sink.directory(path, mode)
            return
        if kind not in REGULAR_TYPES:
            raise PayloadError(f"archive member {name!r} has unknown type {kind!r}")
        path = safe_member_path(name, self.reserved)
        if not path:
            raise PayloadError(f"archive member {name!r} is a file without a name")
        self.sink.begin_file(path, mode | 0o600, size)
        self.phase, self.remaining, self.pad = "data", size, -size % BLOCK
        if not size:
            self.sink.end_file()
            self._skip_padding()

    @staticmethod
    def _name(block: bytes, pax: dict[str, str]) -> str:
        if "path" in pax:
            return pax["path"]
        try:
            name = block[0:100].split(b"\x00", 1)[0].decode("utf-8")
            prefix = block[345:500].split(b"\x00", 1)[0].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError("a tar member name is not UTF-8") from exc
        return f"{prefix}/{name}" if prefix else name
