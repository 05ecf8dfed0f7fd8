"""Remote commands: every payload gets a result, bad ones an error naming the problem; log
archives honour the period and the maximum size."""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import tarfile

import pytest

from agent.master.log_archive import build_archive, lines_in_period
from agent.master.remote_commands import CommandError, CommandRunner, LogRequest, log_request

UTC = datetime.UTC


def run_commands(payloads: list[bytes], handlers=None) -> list[dict]:
    results: list[dict] = []

    async def respond(answer: dict) -> None:
        results.append(answer)

    async def ok(_command):
        return {"done": True}

    async def boom(_command):
        raise RuntimeError("disk on fire")

    runner = CommandRunner(handlers or {"reset_db": ok, "reboot": ok, "unpair": ok,
                                        "retrieve_logs": ok, "explode": boom}, respond)

    async def main():
        for payload in payloads:
            await runner.handle(payload)

    asyncio.run(main())
    return results


@pytest.mark.parametrize("payload, error", [
    (b"not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"command": "reboot"}', "no valid id"),
    (b'{"id": "../x", "command": "reboot"}', "no valid id"),
    (b"x" * 70_000, "over the"),
    (b"\xff\xfe", "not valid JSON"),
])
def test_unreadable_commands_get_an_error_result(payload, error):
    [result] = run_commands([payload])
    assert result["ok"] is False and error in result["error"]
    assert result["command_id"] is None


@pytest.mark.parametrize("command, error", [
    ({"command": "format_disk"}, "unknown command"),
    ({"command": 5}, "command: must be a string"),
    ({"command": "reboot", "args": []}, "args: must be a JSON object"),
    ({"command": "reset_db", "args": {"force": True}}, "takes no arguments"),
    ({"command": "explode"}, "explode failed: disk on fire"),
])
def test_bad_commands_get_an_error_result_with_their_id(command, error):
    [result] = run_commands([json.dumps({"id": "c1", **command}).encode()])
    assert result == {"command_id": "c1", "ok": False, "error": result["error"]}
    assert error in result["error"]


def test_a_redelivered_command_runs_once():
    runs = []

    async def reset(_command):
        runs.append(1)
        return {"reset": True}

    payload = json.dumps({"id": "c2", "command": "reset_db"}).encode()
    results = run_commands([payload, payload], {"reset_db": reset})
    assert runs == [1] and results[0] == results[1] == {
        "command_id": "c2", "ok": True, "result": {"reset": True}}


@pytest.mark.parametrize("args, error", [
    ({}, "since"),
    ({"since": "yesterday", "until": "2024-01-01T00:00:00Z", "max_size": 4096}, "since"),
    ({"since": "2024-01-02T00:00:00Z", "until": "2024-01-01T00:00:00Z", "max_size": 4096},
     "before"),
    ({"since": "2024-01-01T00:00:00Z", "until": "2024-01-02T00:00:00Z", "max_size": "1k"},
     "max_size"),
    ({"since": "2024-01-01T00:00:00Z", "until": "2024-01-02T00:00:00Z", "max_size": 10},
     "max_size"),
    ({"since": "2024-01-01T00:00:00Z", "until": "2024-01-02T00:00:00Z", "max_size": True},
     "max_size"),
])
def test_retrieve_logs_arguments_are_checked(args, error):
    with pytest.raises(CommandError, match=error):
        log_request(args)


def _request(max_size: int) -> LogRequest:
    return LogRequest(datetime.datetime(2024, 1, 1, 10, tzinfo=UTC),
                      datetime.datetime(2024, 1, 1, 11, tzinfo=UTC), max_size)


def test_lines_of_the_period_with_their_continuation_lines():
    lines = [
        "2024-01-01T09:59:59.000Z INFO a: before\n",
        "2024-01-01T10:00:00.000Z INFO a: first\n",
        "Traceback (most recent call last):\n",
        "2024-01-01T10:30:00.000Z INFO a: middle\n",
        "2024-01-01T11:00:01.000Z INFO a: after\n",
        "  continuation of after\n",
    ]
    kept = lines_in_period(lines, _request(4096))
    assert kept == lines[1:4]


def _unpack(archive: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}


def test_archive_fits_max_size_by_dropping_the_oldest_lines_and_says_so():
    import random

    rng = random.Random(1)
    lines = [f"2024-01-01T10:{i // 60:02d}:{i % 60:02d}.000Z INFO a: "
             f"{rng.getrandbits(128):032x}\n" for i in range(3000)]
    archive, summary = build_archive("T1", "log file", lines, _request(8192))
    assert len(archive) <= 8192
    assert summary["truncated"] and 0 < summary["lines"] < 3000
    files = _unpack(archive)
    assert "TRUNCATED" in files["README.txt"]
    kept = files["agent.log"].splitlines(keepends=True)
    assert kept[0].startswith("[truncated:")
    assert kept[1:] == lines[-summary["lines"]:]  # the newest lines, whole

    archive, summary = build_archive("T1", "log file", lines[:10], _request(65536))
    assert not summary["truncated"]
    assert _unpack(archive)["agent.log"] == "".join(lines[:10])
