"""The control socket (docs/protocol.md §4), the screen bus behind it, and sd_notify."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import time
from pathlib import Path

import pytest
from fake_agent import FakeBackend, screen
from waiting import wait_for

from agent.control.screen_bus import ScreenBus
from agent.control.server import ControlServer, ControlServerThread
from batm_common.control_client import AgentUnreachable, ControlClient
from batm_common.control_commands import ControlCommand
from batm_common.jsonlines import socket_path
from batm_common.sd_notify import sd_notify


class Line:
    """A raw JSON-lines connection, to send exactly the bytes a test wants."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, message: dict) -> None:
        self.send_raw(json.dumps(message).encode() + b"\n")

    def recv(self) -> dict:
        line = self.file.readline()
        assert line.endswith(b"\n"), f"connection closed (got {line!r})"
        return json.loads(line)

    def ask(self, message: dict) -> dict:
        self.send(message)
        return self.recv()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def agent(tmp_path: Path, backend: FakeBackend):
    with ControlServerThread(tmp_path / "control.sock", backend) as thread:
        yield thread


@pytest.fixture
def line(agent: ControlServerThread):
    connection = Line(agent.path)
    yield connection
    connection.close()


# -- commands -------------------------------------------------------------------------------------


def test_ping_status_and_screen(line: Line, backend: FakeBackend) -> None:
    assert line.ask({"cmd": "ping"}) == {"ok": True}
    answer = line.ask({"cmd": "status"})
    assert answer["ok"] is True
    assert answer["status"]["serial"] == "T-0042"
    answer = line.ask({"cmd": "screen"})
    assert answer["ok"] is True
    assert answer["screen"]["screen"] == "connecting"
    assert answer["screen"]["seq"] == 1
    assert isinstance(answer["screen"]["changed_at"], float)


def test_set_server_answers_canonical_address(line: Line, backend: FakeBackend) -> None:
    assert line.ask({"cmd": "set_server", "address": " 192.0.2.1 "}) == {
        "ok": True, "server": "192.0.2.1:8443"}
    assert backend.server == "192.0.2.1:8443"
    assert line.ask({"cmd": "set_server", "address": "[2001:db8::1]:9000"})["server"] == (
        "[2001:db8::1]:9000")


@pytest.mark.parametrize(
    ("address", "complaint"),
    [("a..b", "empty label"), ("host:99999", "outside 1-65535"), ("", "empty"),
     ("blocked.example", "block list")],
)
def test_set_server_bad_address_names_the_problem(line: Line, backend: FakeBackend,
                                                  address: str, complaint: str) -> None:
    answer = line.ask({"cmd": "set_server", "address": address})
    assert answer["ok"] is False
    assert complaint in answer["error"]
    assert "address" in answer["error"]
    assert backend.server is None


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (b"hello\n", "not valid JSON"),
        (b"{\"cmd\": \"ping\"\n", "not valid JSON"),
        (b"[1, 2]\n", "JSON object, not a list"),
        (b"\"ping\"\n", "JSON object, not a string"),
        (b"null\n", "JSON object, not null"),
        (b"{}\n", 'no "cmd" field'),
        (b"{\"cmd\": 5}\n", '"cmd" field must be a string, not a number'),
        (b"{\"cmd\": \"reboot\"}\n", "unknown command 'reboot'"),
        (b"{\"cmd\": \"set_server\"}\n", '"address" field'),
        (b"{\"cmd\": \"set_server\", \"address\": [1]}\n", '"address" field must be a string'),
        (b"\xff\xfe\x00garbage\n", "not valid UTF-8"),
    ],
)
def test_malformed_line_gets_an_error_and_the_connection_stays(
    line: Line, raw: bytes, complaint: str
) -> None:
    line.send_raw(raw)
    answer = line.recv()
    assert answer["ok"] is False
    assert complaint in answer["error"]
    assert line.ask({"cmd": "ping"}) == {"ok": True}


@pytest.mark.parametrize("command", list(ControlCommand))
def test_every_catalogued_command_is_answered(agent: ControlServerThread, command) -> None:
    connection = Line(agent.path)
    try:
        answer = connection.ask({"cmd": command})
    finally:
        connection.close()
    assert "unknown command" not in answer.get("error", "")


def test_overlong_lines_are_refused_once_each(line: Line) -> None:
    padding = "x" * (64 * 1024)
    line.send({"cmd": "ping", "padding": padding})  # valid JSON, but too long
    assert "longer than 65536 bytes" in line.recv()["error"]
    # Sent in pieces, without a newline for a long time: one error, then the rest is discarded.
    for _ in range(5):
        line.send_raw(b"y" * 40_000)
    line.send_raw(b"tail of the same line\n")
    assert "longer than 65536 bytes" in line.recv()["error"]
    assert line.ask({"cmd": "ping"}) == {"ok": True}


def test_blank_lines_are_ignored(line: Line) -> None:
    line.send_raw(b"\n  \r\n\n")
    assert line.ask({"cmd": "ping"}) == {"ok": True}


@pytest.mark.parametrize("raw", [b"\x1e", b"\x0b\x0c", "\u2028".encode()])
def test_a_line_of_other_whitespace_is_answered_not_ignored(line: Line, raw: bytes) -> None:
    """Python's str.strip() calls these blank; a client waiting for an answer would hang."""
    line.send_raw(raw + b"\n")
    assert "not valid JSON" in line.recv()["error"]


def test_backend_failure_is_an_error_answer(line: Line, backend: FakeBackend) -> None:
    backend.broken = True
    answer = line.ask({"cmd": "status"})
    assert answer["ok"] is False
    assert "the settings file is unreadable" in answer["error"]
    backend.broken = False
    assert line.ask({"cmd": "status"})["ok"] is True


def test_unencodable_backend_answer_is_an_error(line: Line, backend: FakeBackend) -> None:
    backend.status = lambda: {"when": object()}
    answer = line.ask({"cmd": "status"})
    assert answer["ok"] is False and "cannot send" in answer["error"]
    assert line.ask({"cmd": "ping"}) == {"ok": True}


def test_many_bad_lines_in_one_burst(line: Line) -> None:
    line.send_raw(b"junk\n[]\n{\"cmd\":1}\n\xc3\x28\n{\"cmd\":\"ping\"}\n")
    answers = [line.recv() for _ in range(5)]
    assert [a["ok"] for a in answers] == [False, False, False, False, True]


# -- subscriptions --------------------------------------------------------------------------------


def test_subscribe_sees_current_then_changes_in_order(
    agent: ControlServerThread, line: Line, backend: FakeBackend
) -> None:
    first = line.ask({"cmd": "subscribe"})
    assert first["ok"] is True
    assert first["screen"]["screen"] == "connecting"
    for screen_id in ("terminal_unpaired", "upgrading", "upgrading", "pairing_code"):
        agent.call(backend.bus.publish, screen(screen_id))
    agent.call(backend.bus.publish, screen("pairing_code", pairing_code="ABCD-EFGH"))
    events = [line.recv() for _ in range(4)]
    assert all(event["event"] == "screen" for event in events)
    assert [e["screen"]["screen"] for e in events] == [
        "terminal_unpaired", "upgrading", "pairing_code", "pairing_code"]
    assert events[-1]["screen"]["pairing_code"] == "ABCD-EFGH"
    assert [e["screen"]["seq"] for e in events] == [2, 3, 4, 5]
    # Requests still work on a subscribed connection; their answers carry "ok", events "event".
    assert line.ask({"cmd": "ping"}) == {"ok": True}
    assert line.ask({"cmd": "subscribe"})["ok"] is False


def test_closing_a_subscriber_unsubscribes(agent: ControlServerThread, backend: FakeBackend):
    watcher = Line(agent.path)
    assert watcher.ask({"cmd": "subscribe"})["ok"] is True
    assert agent.call(lambda: backend.bus.subscriber_count) == 1
    watcher.close()
    wait_for(lambda: agent.call(lambda: backend.bus.subscriber_count) == 0, what="unsubscribe")


def test_slow_subscriber_does_not_block_others(
    agent: ControlServerThread, backend: FakeBackend
) -> None:
    slow = Line(agent.path)  # subscribes, then does not read at all
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert slow.ask({"cmd": "subscribe"})["ok"] is True
    fast = Line(agent.path)
    assert fast.ask({"cmd": "subscribe"})["ok"] is True
    other = Line(agent.path)
    big_text = "z" * 32_000  # 200 of these are far more than the socket buffers hold
    started = time.monotonic()
    for n in range(200):
        agent.call(backend.bus.publish, screen("upgrading", text=big_text, progress=n % 101))
        event = fast.recv()
        assert event["screen"]["seq"] == n + 2
    assert other.ask({"cmd": "ping"}) == {"ok": True}
    assert time.monotonic() - started < 30
    # The slow one skipped screens but its last one is the newest: drop to latest.
    slow.sock.settimeout(10)
    seqs = []
    while not seqs or seqs[-1] != 201:
        seqs.append(slow.recv()["screen"]["seq"])
    assert seqs == sorted(seqs)
    assert len(seqs) < 200
    for connection in (slow, fast, other):
        connection.close()


# -- the socket file ------------------------------------------------------------------------------


def test_socket_mode_is_0660(agent: ControlServerThread) -> None:
    info = os.stat(agent.path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660


def test_stale_socket_is_replaced_and_removed_at_close(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays: what a killed agent leaves behind
    with pytest.raises(AgentUnreachable, match="nothing listens"):
        ControlClient(path, timeout=2)
    with ControlServerThread(path, FakeBackend()), ControlClient(tmp_path) as client:
        assert client.request({"cmd": "ping"}) == {"ok": True}
    assert not path.exists()


def test_a_live_socket_is_not_taken_over(agent: ControlServerThread) -> None:
    async def second() -> None:
        await ControlServer(agent.path, FakeBackend()).start()

    with pytest.raises(OSError, match="another agent is already listening"):
        asyncio.run(second())
    with ControlClient(agent.path) as client:
        assert client.request({"cmd": "ping"}) == {"ok": True}


def test_client_says_agent_is_not_running(tmp_path: Path) -> None:
    with pytest.raises(AgentUnreachable) as caught:
        ControlClient(tmp_path / "state")
    assert str(caught.value) == (
        f"the agent is not running (no control socket at {tmp_path / 'state' / 'control.sock'})")


def test_socket_path_of_state_dir_or_socket(tmp_path: Path) -> None:
    assert socket_path(tmp_path) == tmp_path / "control.sock"
    assert socket_path(tmp_path / "x.sock") == tmp_path / "x.sock"
    assert socket_path(tmp_path / "missing") == tmp_path / "missing" / "control.sock"


def test_client_call_and_screens(agent: ControlServerThread, backend: FakeBackend) -> None:
    with ControlClient(agent.path) as client:
        assert client.call("set_server", address="example.org:1")["server"] == "example.org:1"
    with ControlClient(agent.path) as client:
        screens = client.screens(deadline=time.monotonic() + 10)
        assert next(screens)["screen"] == "connecting"
        agent.call(backend.bus.publish, screen("in_service"))
        assert next(screens)["screen"] == "in_service"


# -- the bus itself -------------------------------------------------------------------------------


def test_bus_assigns_seq_and_ignores_equal_models() -> None:
    bus = ScreenBus(clock=lambda: 1000.0)
    assert bus.current is None
    assert bus.publish({"screen": "connecting", "seq": 99, "changed_at": 1})
    assert bus.current == {"screen": "connecting", "seq": 1, "changed_at": 1000.0}
    assert not bus.publish({"screen": "connecting"})
    assert not bus.publish({"screen": "connecting", "seq": 7})
    assert bus.publish({"screen": "connecting", "text": "again"})
    assert bus.current["seq"] == 2
    bus.current["screen"] = "tampered"
    assert bus.current["screen"] == "connecting"


def test_bus_subscription_current_first_and_drop_to_latest() -> None:
    async def scenario() -> None:
        bus = ScreenBus({"screen": "connecting"}, queue_size=4)
        async with bus.subscribe() as slow, bus.subscribe() as fast:
            assert (await anext(fast))["screen"] == "connecting"
            for n in range(10):
                bus.publish({"screen": "upgrading", "progress": n})
                assert (await anext(fast))["progress"] == n
            got = [await anext(slow) for _ in range(4)]
            assert [m["seq"] for m in got] == [8, 9, 10, 11]
            assert slow.dropped == 7
        assert bus.subscriber_count == 0

    asyncio.run(scenario())


def test_bus_subscriber_before_first_publish_waits_for_it() -> None:
    async def scenario() -> None:
        bus = ScreenBus()
        subscription = bus.subscribe()
        waiter = asyncio.create_task(anext(subscription))
        await asyncio.sleep(0)
        assert not waiter.done()
        bus.publish({"screen": "set_server"})
        assert (await asyncio.wait_for(waiter, 5))["screen"] == "set_server"
        subscription.close()

    asyncio.run(scenario())


# -- sd_notify ------------------------------------------------------------------------------------


def test_sd_notify_is_a_no_op_without_systemd() -> None:
    assert sd_notify("READY=1", env={}) is False


@pytest.mark.parametrize("abstract", [False, True])
def test_sd_notify_sends_a_datagram(tmp_path: Path, abstract: bool) -> None:
    name = f"batm-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        if abstract:
            receiver.bind("\0" + name)
            address = "@" + name
        else:
            address = str(tmp_path / "notify")
            receiver.bind(address)
        receiver.settimeout(5)
        assert sd_notify("READY=1\nSTATUS=listening", env={"NOTIFY_SOCKET": address})
        assert receiver.recv(4096) == b"READY=1\nSTATUS=listening"


def test_sd_notify_never_raises(tmp_path: Path) -> None:
    assert sd_notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "nobody")}) is False
