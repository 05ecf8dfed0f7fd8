"""The outbox: durable events, marked sent on PUBACK, deleted only on the server's
acknowledgement, re-sent when unacknowledged, drained in order; the pump without I/O."""

from __future__ import annotations

import json
import os

import pytest

from agent.master.outbox import (
    AckError,
    EventError,
    Outbox,
    OutboxPump,
    parse_acks,
)
from batm_common.quarantine import Replacement, take_reports


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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_puback_marks_sent_and_only_the_server_ack_deletes_in_recording_order(tmp_path):
    box = Outbox(tmp_path)
    ids = [box.record("test", {"n": i}) for i in range(10)]
    link = FakeLink()
    pump = OutboxPump(box, window=4)
    pump.connected_with(link.publish)
    assert [m["id"] for m in link.sent.values()] == ids[:4]
    pump.acked([2, 1])  # the broker's PUBACKs: sent, not delivered
    assert box.count() == 10 and box.count_sent() == 2
    assert len(link.sent) == 4, "the window is counted until the server acknowledges"
    pump.server_acked([ids[0], ids[1]])
    assert box.count() == 8
    assert [m["id"] for m in link.sent.values()] == ids[:6]
    # A lost link: nothing is deleted; the next connection sends every unconfirmed event again,
    # the sent ones included (the broker may have lost them), in recording order.
    pump.disconnected("cut")
    assert pump.last_sync_error and "8 event(s)" in pump.last_sync_error
    link2 = FakeLink()
    pump.connected_with(link2.publish)
    assert [m["id"] for m in link2.sent.values()] == ids[2:6]
    pump.acked([99])  # an unknown mid (a status publish) changes nothing
    pump.server_acked(["not-ours"])  # nor does an id the outbox does not hold
    assert box.count() == 8 and box.count_sent() == 0


def test_server_ack_before_the_puback_and_repeated_acks_are_harmless(tmp_path):
    box = Outbox(tmp_path)
    ids = [box.record("test", {"n": i}) for i in range(3)]
    link = FakeLink()
    pump = OutboxPump(box)
    pump.connected_with(link.publish)
    pump.server_acked([ids[0]])  # the server's ack overtook the broker's PUBACK
    pump.acked([1, 2, 3])
    pump.server_acked(ids)
    pump.server_acked(ids)  # a re-sent event acknowledged twice
    assert box.count() == 0 and pump.in_flight == 0
    assert len(link.sent) == 3


def test_sent_but_unacknowledged_events_are_resent_after_the_timeout(tmp_path):
    box = Outbox(tmp_path)
    ids = [box.record("test", {"n": i}) for i in range(3)]
    link = FakeLink()
    clock = Clock()
    pump = OutboxPump(box, resend_after=10, error_after=30, clock=clock)
    pump.connected_with(link.publish)
    pump.acked([1, 2])  # ids[0], ids[1] sent; ids[2] still waits for its PUBACK
    pump.server_acked([ids[1]])
    clock.now += 9.9
    pump.tick()
    assert len(link.sent) == 3, "re-sent before the timeout"
    clock.now += 0.1
    pump.tick()
    # Only the sent, unacknowledged one goes again (the one without PUBACK is paho's business
    # on this connection, and goes again on the next one).
    assert [m["id"] for m in list(link.sent.values())[3:]] == [ids[0]]
    assert pump.resent == 1 and pump.last_sync_error is None
    clock.now += 10
    pump.tick()
    assert len(link.sent) == 4, "re-sent again before its new PUBACK"
    pump.acked([4])
    clock.now += 20  # 40 s after its first PUBACK: the operator hears about it
    pump.tick()
    assert pump.last_sync_error == "server did not acknowledge 1 event(s) for 30 s"
    assert len(link.sent) == 5
    pump.acked([3])
    pump.server_acked([ids[0], ids[2]])
    assert box.count() == 0
    assert pump.last_sync is not None and pump.last_sync_error is None


def test_drained_outbox_sets_last_sync_only_through_server_acks(tmp_path):
    box = Outbox(tmp_path)
    ids = [box.record("test", {"n": i}) for i in range(3)]
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
    assert pump.last_sync is None and pump.last_sync_error, "PUBACKs are no sync"
    assert box.count_sent() == 3
    pump.server_acked(ids)
    assert box.count() == 0
    assert pump.last_sync is not None and pump.last_sync_error is None
    assert changes
    # Kept across restarts (the status reports it after a reboot too).
    assert OutboxPump(Outbox(tmp_path)).last_sync == pump.last_sync


def test_sent_state_survives_reopening_and_everything_unconfirmed_is_sent_again(tmp_path):
    box = Outbox(tmp_path)
    ids = [box.record("test", {"n": i}) for i in range(4)]
    pump = OutboxPump(box)
    pump.connected_with(FakeLink().publish)
    pump.acked([1, 2, 3, 4])
    pump.server_acked(ids[:1])
    box.close()
    again = Outbox(tmp_path)  # an agent restart (or a reboot)
    assert again.count() == 3 and again.count_sent() == 3
    link = FakeLink()
    OutboxPump(again).connected_with(link.publish)
    assert [m["id"] for m in link.sent.values()] == ids[1:]


def test_an_old_local_db_gains_the_sent_column(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "local.db")
    db.executescript("CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                     "id TEXT NOT NULL UNIQUE, body BLOB NOT NULL);"
                     "INSERT INTO outbox (id, body) VALUES ('old-1', x'7b7d');")
    db.commit()
    db.close()
    box = Outbox(tmp_path)
    assert [p.id for p in box.pending(10)] == ["old-1"]
    box.mark_sent(["old-1"])
    assert box.count_sent() == 1


@pytest.mark.parametrize("payload, message", [
    (b"nope", "not valid JSON"), (b"[]", "JSON object"), (b'{"ids": "a"}', "JSON object"),
    (b'{"ids": [7]}', "not an event id"), (b'{"ids": ["../x"]}', "not an event id"),
    (json.dumps({"ids": ["a"] * 1001}).encode(), "more than"),
])
def test_bad_acknowledgements_are_refused_with_a_reason(payload, message):
    with pytest.raises(AckError, match=message):
        parse_acks(payload)


def test_acknowledgement_ids_are_read():
    assert parse_acks(b'{"ids": ["a-1", "b_2"]}') == ["a-1", "b_2"]


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
    box.set_meta("created_at", "2001-01-01T00:00:00.000Z")  # as if made long ago
    box.reset()
    assert box.count() == 0 and box.get_meta("last_sync") is None
    assert box.created_at > "2001-01-01T00:00:00.000Z", "the new database says when it was made"
    box.record("after")
    assert box.count() == 1


def test_a_damaged_local_db_is_quarantined_recreated_and_reported(tmp_path):
    """Issue 13, item 5: 'file is not a database' used to crash-loop the agent."""
    take_reports()
    (tmp_path / "local.db").write_bytes(b"this is not an SQLite database" * 100)
    outbox = Outbox(tmp_path)
    assert outbox.quarantined is not None and outbox.quarantined.exists()
    assert outbox.quarantined.read_bytes().startswith(b"this is not")
    [report] = take_reports()  # the daemon turns it into an event for the server
    assert report.moved_to == str(outbox.quarantined)
    assert report.replacement == Replacement.RECREATED and "not a database" in report.reason
    outbox.record("after.recreate")  # the new database works
    assert outbox.count() == 1
    outbox.close()
    assert Outbox(tmp_path).quarantined is None  # and it is fine at the next start
    assert take_reports() == []
