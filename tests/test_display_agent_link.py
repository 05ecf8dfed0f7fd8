"""The display's control-socket client against a real Unix-socket server speaking §4."""

import json
import queue
import socket
import threading
import time

import pytest

from display.agent_link import AgentLink
from display.fake_agent import FakeAgent


class Recorder:
    """Collects what the link reports, from its thread, for the test thread to wait on."""

    def __init__(self):
        self.events = queue.Queue()

    def on_screen(self, raw):
        self.events.put(("screen", raw))

    def on_down(self, reason):
        self.events.put(("down", reason))

    def next(self, timeout=5.0):
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"the link reported nothing within {timeout} s")

    def wait_for(self, predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(event)
            if predicate(event):
                return event
        pytest.fail(f"no matching event within {timeout} s; saw {seen}")

    def quiet_for(self, seconds):
        try:
            event = self.events.get(timeout=seconds)
        except queue.Empty:
            return
        pytest.fail(f"unexpected event {event}")


def _screen(screen_id, seq):
    return {"screen": screen_id, "title": screen_id, "text": "", "serial": "BT1",
            "version": 20230801, "seq": seq}


@pytest.fixture
def link_factory(tmp_path):
    links = []

    def make(**kwargs):
        recorder = Recorder()
        options = {"min_backoff": 0.05, "max_backoff": 0.2, "down_grace": 0.0, **kwargs}
        link = AgentLink.for_state_dir(tmp_path, recorder.on_screen, recorder.on_down,
                                       **options).start()
        links.append(link)
        return link, recorder

    yield make
    for link in links:
        link.stop()


def test_subscribe_delivers_current_screen_then_changes(tmp_path, link_factory):
    agent = FakeAgent(tmp_path / "control.sock", _screen("connecting", 1)).start()
    try:
        link, rec = link_factory()
        assert rec.next() == ("screen", _screen("connecting", 1))
        agent.publish(_screen("pairing_code", 2))
        assert rec.next() == ("screen", _screen("pairing_code", 2))
        assert link.connections == 1 and agent.subscribes == 1
    finally:
        agent.stop()


def test_reconnects_after_the_agent_restarts_and_gets_the_new_model(tmp_path, link_factory):
    path = tmp_path / "control.sock"
    agent = FakeAgent(path, _screen("pairing_code", 1)).start()
    link, rec = link_factory()
    assert rec.next() == ("screen", _screen("pairing_code", 1))

    agent.stop()  # the agent dies: socket closed and removed
    kind, reason = rec.next()
    assert kind == "down" and reason

    agent = FakeAgent(path, _screen("in_service", 7)).start()  # …and comes back
    try:
        assert rec.wait_for(lambda e: e[0] == "screen") == ("screen", _screen("in_service", 7))
        assert link.connections == 2
        agent.publish(_screen("vpn_error", 8))
        assert rec.next() == ("screen", _screen("vpn_error", 8))
    finally:
        agent.stop()


def test_reports_down_with_the_socket_path_when_there_is_no_agent(tmp_path, link_factory):
    _, rec = link_factory()
    kind, reason = rec.next()
    assert kind == "down"
    assert str(tmp_path / "control.sock") in reason
    rec.quiet_for(0.5)  # reported once, not on every retry


def test_a_quick_agent_restart_within_the_grace_period_is_not_reported(tmp_path,
                                                                        link_factory):
    path = tmp_path / "control.sock"
    agent = FakeAgent(path, _screen("in_service", 1)).start()
    _, rec = link_factory(down_grace=5.0)
    assert rec.next()[0] == "screen"
    agent.stop()
    agent = FakeAgent(path, _screen("in_service", 2)).start()
    try:
        assert rec.next() == ("screen", _screen("in_service", 2))  # no "down" in between
    finally:
        agent.stop()


def test_grace_period_ends_in_a_down_report(tmp_path, link_factory):
    started = time.monotonic()
    _, rec = link_factory(down_grace=0.6, max_backoff=2.0)
    assert rec.next()[0] == "down"
    # Reported at the end of the grace period, not a whole backoff step later.
    assert 0.55 <= time.monotonic() - started < 1.5


def test_garbage_lines_are_skipped_without_dropping_the_subscription(tmp_path, link_factory):
    agent = FakeAgent(tmp_path / "control.sock", _screen("connecting", 1)).start()
    try:
        link, rec = link_factory()
        assert rec.next()[0] == "screen"
        agent.send_raw(b"this is not json\n[1, 2]\n{\"event\": \"other\"}\n")
        agent.publish(_screen("in_service", 2))
        assert rec.next() == ("screen", _screen("in_service", 2))
        assert link.connections == 1
    finally:
        agent.stop()


def test_refused_subscribe_is_reported_and_retried(tmp_path, link_factory):
    path = tmp_path / "control.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    accepted = []

    def refuse():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)
            conn.makefile("rb").readline()
            conn.sendall(json.dumps({"ok": False, "error": "display not allowed"}).encode()
                         + b"\n")
            conn.close()

    threading.Thread(target=refuse, daemon=True).start()
    try:
        _, rec = link_factory()
        kind, reason = rec.next()
        assert kind == "down" and "display not allowed" in reason
        deadline = time.monotonic() + 3
        while len(accepted) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(accepted) >= 3, "the link should keep retrying"
    finally:
        server.close()


def test_long_state_dir_path_beyond_sun_path(tmp_path, link_factory, monkeypatch):
    deep = tmp_path.joinpath(*["a-fairly-long-directory-name"] * 5)
    deep.mkdir(parents=True)
    assert len(str(deep / "control.sock")) > 108
    monkeypatch.chdir(deep)  # bind with a short relative name; the link uses the long one
    agent = FakeAgent("control.sock", _screen("in_service", 1)).start()
    try:
        rec = Recorder()
        link = AgentLink.for_state_dir(deep, rec.on_screen, rec.on_down, down_grace=5).start()
        try:
            assert rec.next() == ("screen", _screen("in_service", 1))
        finally:
            link.stop()
    finally:
        agent.stop()


def test_stop_is_prompt_while_connected_and_while_retrying(tmp_path):
    for with_agent in (True, False):
        agent = FakeAgent(tmp_path / "control.sock").start() if with_agent else None
        rec = Recorder()
        link = AgentLink.for_state_dir(tmp_path, rec.on_screen, rec.on_down,
                                       max_backoff=30, min_backoff=30).start()
        rec.next()
        started = time.monotonic()
        link.stop()
        assert time.monotonic() - started < 1.0
        assert not link._thread.is_alive()
        if agent:
            agent.stop()
