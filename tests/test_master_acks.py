"""The server's half of end-to-end acknowledgement: which events a batch stored (and may be
acknowledged to the terminal), the acks messages, and the terminals' broker ACLs."""

from __future__ import annotations

import datetime
import json

from server.db.engine import open_database
from server.db.master import TerminalStatus
from server.db.terminals import Terminal
from server.master.dynsec import (
    ADMIN_ROLE,
    TERMINAL_ROLE,
    acl_file,
    reconcile_dynsec,
    terminal_role,
)
from server.master.ingest import Incoming, Ingest, Ingested
from server.master.link import ACK_IDS, MasterLink
from server.master.monitoring import Monitoring


def event(event_id: str) -> bytes:
    return json.dumps({"id": event_id, "type": "test", "at": "2024-01-01T00:00:00Z",
                       "data": None}).encode()


def two_terminals(tmp_path, database_url):
    sessions = open_database(tmp_path, database_url)
    now = datetime.datetime.now(datetime.UTC)
    with sessions() as session, session.begin():
        for serial in ("T1", "T2"):
            session.add(Terminal(serial=serial, scenario="B", state="paired", created_at=now))
    return sessions


def test_ingest_names_stored_events_per_terminal_including_redeliveries(tmp_path, database_url):
    sessions = two_terminals(tmp_path, database_url)
    store, monitoring = Ingest(sessions), Monitoring(sessions)
    first = store.ingest([Incoming("T1", "events", event("e1")),
                          Incoming("T2", "events", event("e2"))])
    assert first.refused == 0 and first.events == {"T1": ["e1"], "T2": ["e2"]}
    again = store.ingest([
        Incoming("T1", "events", event("e1")),  # a re-send: stored once, acknowledged again
        Incoming("T1", "events", event("e1")),
        Incoming("T1", "events", event("e3")),
        Incoming("T1", "events", b"not json"),  # refused: never acknowledged
        Incoming("T1", "events", event("e2")),  # another terminal's id: refused
        Incoming("T9", "events", event("e4")),  # no such terminal: refused
        Incoming("T1", "status", json.dumps({"online": True}).encode()),
    ])
    assert again.events == {"T1": ["e1", "e3"]}
    assert again.refused == 3
    assert monitoring.events("T1")["count"] == 2 and monitoring.events("T2")["count"] == 1


def test_within_one_batch_the_first_terminal_to_use_a_new_event_id_keeps_it(tmp_path,
                                                                           database_url):
    sessions = two_terminals(tmp_path, database_url)
    store, monitoring = Ingest(sessions), Monitoring(sessions)
    done = store.ingest([
        Incoming("T2", "events", event("n1")),
        Incoming("T1", "events", event("n1")),  # the same new id from another terminal
        Incoming("T1", "events", event("n2")),
        Incoming("T2", "events", event("n1")),  # T2's re-send, in the same batch
    ])
    assert done.events == {"T2": ["n1"], "T1": ["n2"]}
    assert done.refused == 1 and done.stored == {"events": 3}
    assert monitoring.events("T1")["count"] == 1 and monitoring.events("T2")["count"] == 1
    with sessions() as session:
        row = session.get(TerminalStatus, "T1")
        assert row.rejected == 1 and "'n1' belongs to another terminal" in row.last_reject


class NotedConnection:
    """The ingest connection's publishing half, noting what it was given."""

    def __init__(self) -> None:
        self.writes: list[list[tuple[str, dict]]] = []

    def publish(self, messages: list[tuple[str, bytes]]) -> None:
        self.writes.append([(topic, json.loads(payload)) for topic, payload in messages])


def test_acknowledgements_go_to_each_terminal_in_bounded_messages_in_one_write():
    link = MasterLink.__new__(MasterLink)  # only its acknowledging half, without a broker
    link.ingest_connection = NotedConnection()
    ids = [f"e{i}" for i in range(ACK_IDS + 1)]
    link._acknowledge(Ingested(events={"T1": ids, "T2": ["x"]}))
    [sent] = link.ingest_connection.writes  # the batch's acknowledgements: one write
    assert [topic for topic, _ in sent] == [
        "terminals/T1/acks", "terminals/T1/acks", "terminals/T2/acks"]
    assert sent[0][1]["ids"] + sent[1][1]["ids"] == ids and sent[2][1] == {"ids": ["x"]}
    assert all(len(json.dumps(body)) <= 64 * 1024 for _, body in sent)


def test_terminals_receive_their_acks_and_an_older_servers_own_roles_become_the_shared_one():
    assert "pattern read terminals/%u/acks" in acl_file().splitlines()
    old_role = {"rolename": "terminal-T1", "acls": [
        {"acltype": "subscribePattern", "topic": "terminals/T1/commands", "priority": 0,
         "allow": True}]}
    data = {"clients": [{"username": "T1", "roles": [{"rolename": "terminal-T1"}]},
                        {"username": "T2", "roles": [{"rolename": "terminal-T2"}]}],
            "roles": [old_role, {"rolename": "terminal-T2", "acls": []}]}
    result, removed = reconcile_dynsec(data, "secret", {"T1"})
    assert removed == ["T2"]
    t1 = next(c for c in result["clients"] if c["username"] == "T1")
    assert t1["roles"] == [{"rolename": TERMINAL_ROLE}] and t1["clientid"] == "T1"
    assert {r["rolename"] for r in result["roles"]} == {ADMIN_ROLE, TERMINAL_ROLE}
    shared = next(r for r in result["roles"] if r["rolename"] == TERMINAL_ROLE)
    assert shared == terminal_role()
    # Delivery is left to the ACL file: the plugin must not allow it by default.
    assert result["defaultACLAccess"]["publishClientReceive"] is False


def test_an_out_of_range_number_is_refused_not_a_failed_batch(tmp_path, database_url):
    """Found by tests/test_fuzz.py (seed 13, case 967): OverflowError from SQLite."""
    sessions = two_terminals(tmp_path, database_url)
    status = json.dumps({"online": True, "version": -(2**63) - 1}).encode()
    result = Ingest(sessions).ingest([Incoming("T1", "status", status),
                                      Incoming("T1", "events", event("e1"))])
    assert result.refused == 1 and result.events == {"T1": ["e1"]}
