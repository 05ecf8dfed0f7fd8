"""Stream the payload into a slot: verify each chunk, then apply it; checkpoint as it goes.

Each chunk is read into memory (at most 16 MiB, two buffers), hashed, and compared with its
signed digest *before* a single byte of it reaches the tar parser or the slot: what is installed
is exactly what was verified, and there is no copy that could change after the check. Applying
(tar parsing + writes) runs in a worker thread while the next chunk is read and hashed - hashlib
and os.write release the GIL - so the install runs at about the speed of the slower of SHA-256
and the disk.

A checkpoint is taken at a chunk boundary once `checkpoint_bytes` have been applied since the
last one: the writer fsyncs what it wrote, then the journal records (offset, tar reader state,
writer state). Resuming opens the source at that offset; nothing before it is read again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from firmware_updater import faults
from firmware_updater.errors import PayloadError
from firmware_updater.manifest import Manifest
from firmware_updater.slots import SlotWriter
from firmware_updater.source import Stream
from firmware_updater.tarstream import TarReader


def _fill(stream: Stream, view: memoryview) -> int:
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


class PayloadStreamer:
    def __init__(self, manifest: Manifest, reader: TarReader, writer: SlotWriter,
                 on_checkpoint: Callable[[int], None], checkpoint_bytes: int) -> None:
        self.manifest, self.reader, self.writer = manifest, reader, writer
        self.on_checkpoint, self.checkpoint_bytes = on_checkpoint, checkpoint_bytes
        self.crash_at = faults.crash_offset()
        self.last_checkpoint = 0

    def run(self, stream: Stream, start: int) -> None:
        """Apply the payload from byte `start` (a chunk boundary) to its end."""
        m = self.manifest
        if start % m.chunk_size:
            raise PayloadError(f"cannot resume at byte {start}: not a chunk boundary")
        self.last_checkpoint = start
        size = min(m.chunk_size, m.payload_size)
        buffers = [bytearray(size), bytearray(size)]
        with ThreadPoolExecutor(1, thread_name_prefix="apply") as pool:
            pending: Future | None = None
            for index in range(start // m.chunk_size, m.chunk_count):
                low, high = m.chunk_span(index)
                view = memoryview(buffers[index % 2])[:high - low]
                got = _fill(stream, view)
                if got < len(view):
                    raise PayloadError(f"truncated: the payload ends at byte {low + got} of "
                                       f"{m.payload_size}")
                if hashlib.sha256(view).hexdigest() != m.chunk_sha256[index]:
                    raise PayloadError(f"tampered payload: bytes {low}-{high} do not match the "
                                       f"signed digest of chunk {index}")
                if pending is not None:
                    pending.result()  # the other buffer is free again
                pending = pool.submit(self._apply, low, high, view)
            if pending is not None:
                pending.result()
        if stream.read(1):
            raise PayloadError("oversize: the bundle has data after the declared payload_size")
        self.reader.finish()
        self.writer.complete()

    def _apply(self, low: int, high: int, view: memoryview) -> None:
        if self.crash_at is not None and low <= self.crash_at < high:
            self.reader.feed(view[:self.crash_at - low])
            faults.die()
        self.reader.feed(view)
        due = high - self.last_checkpoint >= self.checkpoint_bytes
        if due and high < self.manifest.payload_size:
            self.on_checkpoint(high)
            self.last_checkpoint = high
