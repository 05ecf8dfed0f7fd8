"""Log retrieval: the agent's log lines of a period, packed into a .tar.gz no larger than asked.

Sources: journald (`journalctl -u batm-agent`) when the agent runs under systemd and journalctl
exists; otherwise the agent's own rotating log file (state_dir/logs/agent.log and its rotated
siblings), which the daemon always writes, with UTC ISO timestamps so a period can be cut out.

If the period's lines do not fit, the oldest are dropped until the archive fits, and the archive
says so (README.txt and a first line in agent.log).
"""

from __future__ import annotations

import datetime
import io
import logging
import logging.handlers
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from agent.master.remote_commands import LogRequest

LOG_DIR = "logs"
LOG_FILE = "agent.log"
ROTATE_BYTES = 5 * 1024 * 1024
ROTATE_KEEP = 5
STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)Z? ")
JOURNAL_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:[+-]\d{2}:?\d{2}|Z)?) ")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record, datefmt=None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def file_handler(state_dir: Path) -> logging.Handler:
    """The rotating file the daemon logs to, so there is always something to collect."""
    directory = Path(state_dir) / LOG_DIR
    directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        directory / LOG_FILE, maxBytes=ROTATE_BYTES, backupCount=ROTATE_KEEP, encoding="utf-8")
    handler.setFormatter(UtcFormatter(LOG_FORMAT))
    return handler


def _parse(stamp: str) -> datetime.datetime | None:
    try:
        moment = datetime.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment


def lines_in_period(lines, request: LogRequest, pattern: re.Pattern = STAMP) -> list[str]:
    """Lines stamped within [since, until]; unstamped lines follow the line before them."""
    kept: list[str] = []
    inside = False
    for line in lines:
        match = pattern.match(line)
        if match:
            moment = _parse(match.group(1))
            inside = moment is not None and request.since <= moment <= request.until
        if inside:
            kept.append(line if line.endswith("\n") else line + "\n")
    return kept


def _file_lines(state_dir: Path) -> list[str]:
    directory = Path(state_dir) / LOG_DIR
    files = [directory / f"{LOG_FILE}.{i}" for i in range(ROTATE_KEEP, 0, -1)]
    files.append(directory / LOG_FILE)
    lines: list[str] = []
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines.extend(handle)
        except FileNotFoundError:
            continue
    return lines


def _under_systemd() -> bool:
    return bool(os.environ.get("INVOCATION_ID")) and shutil.which("journalctl") is not None


def collect(state_dir: Path, request: LogRequest) -> tuple[str, list[str]]:
    """(source description, lines of the period)."""
    if _under_systemd():
        since = request.since.strftime("%Y-%m-%d %H:%M:%S UTC")
        until = request.until.strftime("%Y-%m-%d %H:%M:%S UTC")
        try:
            proc = subprocess.run(
                ["journalctl", "-u", "batm-agent", "--since", since, "--until", until,
                 "-o", "short-iso", "--no-pager", "-q"],
                capture_output=True, text=True, timeout=60)
            if proc.returncode == 0:
                return "journald (unit batm-agent)", proc.stdout.splitlines(keepends=True)
        except (OSError, subprocess.TimeoutExpired):
            pass
    return f"log file {Path(state_dir) / LOG_DIR / LOG_FILE}", lines_in_period(
        _file_lines(state_dir), request)


def _pack(lines: list[str], readme: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9) as tar:
        for name, text in (("README.txt", readme), ("agent.log", "".join(lines))):
            data = text.encode("utf-8", errors="replace")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(time.time())
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_archive(serial: str, source: str, lines: list[str], request: LogRequest
                  ) -> tuple[bytes, dict]:
    """The smallest loss of old lines that fits max_size; returns (archive, summary)."""
    def readme(dropped: int) -> str:
        text = (f"terminal {serial}\nperiod {request.since.isoformat()} .. "
                f"{request.until.isoformat()}\nsource {source}\nlines {len(lines) - dropped} of "
                f"{len(lines)}\nmax_size {request.max_size} bytes\n")
        if dropped:
            text += (f"TRUNCATED: the {dropped} oldest line(s) of the period were left out to "
                     "stay within max_size\n")
        return text

    def attempt(dropped: int) -> bytes:
        kept = lines[dropped:]
        if dropped:
            kept = [f"[truncated: {dropped} older line(s) left out to fit max_size]\n", *kept]
        return _pack(kept, readme(dropped))

    archive = attempt(0)
    dropped = 0
    if len(archive) > request.max_size:
        low, high = 1, len(lines)  # the smallest drop that fits lies in [low, high]
        archive = attempt(high)
        if len(archive) > request.max_size:
            raise ValueError(f"even an empty archive is over max_size {request.max_size}")
        while low < high:
            middle = (low + high) // 2
            candidate = attempt(middle)
            if len(candidate) <= request.max_size:
                high, archive = middle, candidate
            else:
                low = middle + 1
        dropped = high
    return archive, {"lines": len(lines) - dropped, "dropped": dropped, "size": len(archive),
                     "source": source, "truncated": dropped > 0}
