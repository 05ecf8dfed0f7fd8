"""The outbox: durable events, deleted only on PUBACK, drained in order; the pump without I/O."""

from __future__ import annotations

import json
import os

import pytest

from agent.outbox import EventError, Outbox, OutboxPump


class FakeLink:
    """Hands out mids; remembers what was published."""

    def __init__(self) -> None:
        self.mid = 0
        self.sent: dict[int, dict] = {}
        self.refuse = False

    def publish(self, body: bytes) -> int | None:
        if self.refuse:
            return None
        self.mid += 1
        self.sent[self.mid] = json.loads(body)
        return self.mid


def test_record_is_durable_and_survives_reopening(tmp_path):
    box = Outbox(tmp_path)
    ids = [box.record("test", {"n": i}) for i in range(5)]
    box.close()
    again = Outbox(tmp_path)
    assert [p.id for p in again.pending(10)] == ids
    assert oct(os.stat(again.path).st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("bad, message", [
    ("", "event type"), ("has space", "event type"), (7, "event type"),
])
def test_bad_event_types_are_refused(tmp_path, bad, message):
    with pytest.raises(EventError, match=message):
        Outbox(tmp_path).record(bad)


def test_oversized_and_unserialisable_events_are_refused_and_nothing_stored(tmp_path):
    box = Outbox(tmp_path)
    with pytest.raises(EventError, match="over the"):
        box.record("big", "x" * 70_000)
    with pytest.raises(EventError, match="JSON"):
        box.record("odd", {1, 2})
    assert box.count() == 0


def test_pump_deletes_only_acknowledged_events_in_recording_order(tmp_path):
    box = Outbox(tmp_path)
    ids = [box.record("test", {"n": i}) for i in range(10)]
    link = FakeLink()
    pump = OutboxPump(box, window=4)
    pump.connected_with(link.publish)
    assert [m["id"] for m in link.sent.values()] == ids[:4]
    pump.acked([2, 1])
    assert box.count() == 8
    assert [m["id"] for m in link.sent.values()] == ids[:6]
    # A lost link: nothing is deleted; the next connection sends every unacked event again.
    pump.disconnected("cut")
    assert pump.last_sync_error and "8 event(s)" in pump.last_sync_error
    link2 = FakeLink()
    pump.connected_with(link2.publish)
    assert [m["id"] for m in link2.sent.values()] == ids[2:6]
    pump.acked([99])  # an unknown mid (a status publish) changes nothing
    assert box.count() == 8


def test_drained_outbox_sets_last_sync_and_clears_the_error(tmp_path):
    box = Outbox(tmp_path)
    for i in range(3):
        box.record("test", {"n": i})
    link = FakeLink()
    changes = []
    pump = OutboxPump(box, on_change=lambda: changes.append(1))
    pump.connected_with(link.publish)
    assert pump.last_sync is None
    pump.disconnected("broker restart")
    assert pump.last_sync_error
    link = FakeLink()
    pump.connected_with(link.publish)
    pump.acked(list(link.sent))
    assert box.count() == 0
    assert pump.last_sync is not None and pump.last_sync_error is None
    assert changes
    # Kept across restarts (the status reports it after a reboot too).
    assert OutboxPump(Outbox(tmp_path)).last_sync == pump.last_sync


def test_refused_publish_is_a_sync_error_and_keeps_the_event(tmp_path):
    box = Outbox(tmp_path)
    box.record("test")
    link = FakeLink()
    link.refuse = True
    pump = OutboxPump(box)
    pump.connected_with(link.publish)
    assert pump.last_sync_error == "the MQTT link refused a publish"
    assert box.count() == 1


def test_reset_makes_a_fresh_database(tmp_path):
    box = Outbox(tmp_path)
    box.record("test")
    box.set_meta("last_sync", "x")
    box.reset()
    assert box.count() == 0 and box.get_meta("last_sync") is None
    box.record("after")
    assert box.count() == 1
