"""Logging for journald: a priority on every line, no second timestamp, only when stderr is it."""

import io
import logging
import os
import sys

import pytest

from batm_common.journal_logging import (
    JournalFormatter,
    stderr_handler,
    stream_is_journal,
    syslog_priority,
)


def record(level, msg, exc_info=None):
    return logging.LogRecord("agent.pairing", level, __file__, 1, msg, (), exc_info)


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.CRITICAL, 2),
        (logging.ERROR, 3),
        (logging.WARNING, 4),
        (logging.INFO, 6),
        (logging.DEBUG, 7),
        (logging.ERROR + 5, 3),  # a custom level between two takes the more severe one's
    ],
)
def test_each_level_has_its_syslog_priority(level, priority):
    assert syslog_priority(level) == priority


def test_a_journal_line_has_the_priority_and_no_timestamp():
    line = JournalFormatter().format(record(logging.ERROR, "gate refused: bad signature"))
    assert line == "<3>agent.pairing: gate refused: bad signature"


def test_every_line_of_a_traceback_carries_the_priority():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info()
    lines = JournalFormatter().format(record(logging.ERROR, "crashed", exc_info)).split("\n")
    assert len(lines) > 3
    assert all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>RuntimeError: boom"


def journal_env_for(stream):
    st = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def test_stderr_is_the_journal_only_when_its_device_and_inode_match(tmp_path):
    with open(tmp_path / "stream", "w") as stream, open(tmp_path / "other", "w") as other:
        assert stream_is_journal(stream, journal_env_for(stream))
        assert not stream_is_journal(other, journal_env_for(stream))
        assert not stream_is_journal(stream, {})
        assert not stream_is_journal(stream, {"JOURNAL_STREAM": "garbage"})


def test_a_stream_without_a_file_is_not_the_journal():
    assert not stream_is_journal(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


def test_the_handler_writes_journal_lines_to_the_journal(tmp_path):
    with open(tmp_path / "stream", "w") as stream:
        handler = stderr_handler(stream, journal_env_for(stream))
        handler.emit(record(logging.WARNING, "link down"))
    assert (tmp_path / "stream").read_text() == "<4>agent.pairing: link down\n"


def test_the_handler_keeps_timestamps_and_levels_elsewhere(tmp_path):
    with open(tmp_path / "stream", "w") as stream:
        handler = stderr_handler(stream, {})
        handler.emit(record(logging.WARNING, "link down"))
    text = (tmp_path / "stream").read_text()
    assert text.endswith(" WARNING agent.pairing: link down\n")
    assert not text.startswith("<")
