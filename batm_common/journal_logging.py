"""Logging to stderr that journald understands: a priority per level, no second timestamp.

Under systemd, stderr is a stream to journald and $JOURNAL_STREAM names it ("DEVICE:INODE",
systemd.exec(5)). journald stamps every line itself and reads a leading "<N>" as the line's syslog
priority (SyslogLevelPrefix=, on by default), so there a line is "<3>agent.pairing: message",
and every line of a traceback carries the same prefix: otherwise the continuation lines arrive at
priority 6 and `journalctl -p err` shows half an error. Anywhere else (a terminal, a test, the
simulator's log files) the lines keep their timestamp and level name.

    logging.getLogger().addHandler(stderr_handler())

The check compares $JOURNAL_STREAM with stderr's own device and inode, as systemd documents, so
a child whose stderr was redirected elsewhere does not write "<N>" into a file.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

# syslog(3) priorities by logging level; levels between two take the more severe one's priority.
PRIORITIES = (
    (logging.CRITICAL, 2),  # LOG_CRIT
    (logging.ERROR, 3),  # LOG_ERR
    (logging.WARNING, 4),  # LOG_WARNING
    (logging.INFO, 6),  # LOG_INFO
)
DEBUG_PRIORITY = 7  # LOG_DEBUG

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"


def syslog_priority(levelno: int) -> int:
    for level, priority in PRIORITIES:
        if levelno >= level:
            return priority
    return DEBUG_PRIORITY


def stream_is_journal(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """True when `stream` is the journald stream systemd connected (per $JOURNAL_STREAM)."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False  # closed, or not a real file (pytest's capture, io.StringIO)
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


class JournalFormatter(logging.Formatter):
    """Formats a record as journald wants it: "<N>" before every line, no timestamp."""

    def __init__(self, fmt: str = JOURNAL_FORMAT) -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        text = super().format(record)
        return "\n".join(prefix + line for line in text.split("\n"))


def stderr_handler(
    stream: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    plain_format: str = PLAIN_FORMAT,
) -> logging.Handler:
    """A handler on `stream` (stderr): journald's format when it is the journal, else plain."""
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    if stream_is_journal(stream, env):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter(plain_format))
    return handler
