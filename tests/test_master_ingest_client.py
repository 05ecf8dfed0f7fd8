"""The server's ingest connection (master/ingest_client.py): its codec on made-up bytes, and on a
real Mosquitto the rule it exists under — a message is acknowledged only after its batch
committed, so one whose batch had not committed when the connection dropped comes again."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from test_mqtt_master import require_mosquitto
from waiting import wait_for

from batm_common.hostaddr import ServerAddress
from server.ca import ensure_certificates
from server.master import mqtt_codec as codec
from server.master.broker import Broker, BrokerSettings
from server.master.dynsec import ADMIN_USER
from server.master.ingest import Ingested
from server.master.link import MasterLink


def publish_packet(topic: str, payload: bytes, packet_id: int | None) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic.encode()
    body += packet_id.to_bytes(2, "big") if packet_id is not None else b""
    return codec.packet(codec.PUBLISH, 0x02 if packet_id is not None else 0, body + payload)


def test_packets_split_anywhere_are_read_whole_and_in_order():
    big = b"x" * 300  # a two-byte remaining length
    stream = (bytes([codec.CONNACK << 4, 2, 1, 0])
              + publish_packet("terminals/T1/status", b'{"online": true}', 7)
              + publish_packet("terminals/T2/events", big, None)
              + bytes([codec.PINGRESP << 4, 0])
              + publish_packet("terminals/T3/results", b"", 65535))
    for step in (1, 2, 3, 5, 64, len(stream)):
        reader = codec.PacketReader()
        messages, others = [], []
        for start in range(0, len(stream), step):
            got, rest = reader.read(memoryview(stream)[start:start + step])
            messages += got
            others += rest
        assert messages == [("terminals/T1/status", b'{"online": true}', 7, 1),
                            ("terminals/T2/events", big, 0, 0),
                            ("terminals/T3/results", b"", 65535, 1)], step
        assert others == [(codec.CONNACK << 4, b"\x01\x00"), (codec.PINGRESP << 4, b"")]


def test_a_batch_of_acknowledgements_is_one_write_of_pubacks():
    assert codec.pubacks([1, 258]) == bytes([0x40, 2, 0, 1, 0x40, 2, 1, 2])


def test_a_length_over_four_bytes_is_refused():
    with pytest.raises(codec.ProtocolError, match="four bytes"):
        codec.PacketReader().read(bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]))


class HeldIngest:
    """Stands in for the database: each batch waits until the test lets it commit."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.arrived = threading.Event()
        self.commit = threading.Event()

    def ingest(self, messages) -> Ingested:
        self.batches.append([m.payload.decode() for m in messages])
        self.arrived.set()
        self.commit.wait(10)
        return Ingested(stored={"events": len(messages)})

    def ingest_until_stored(self, messages) -> Ingested:
        return self.ingest(messages)

    def prune_history(self, _days: float) -> int:
        return 0


def connect_as_server(client: mqtt.Client, broker: Broker) -> None:
    """Connect a paho client with the server's own broker account (may use every topic)."""
    client.username_pw_set(ADMIN_USER, broker.admin_password)
    client.connect("127.0.0.1", broker.admin_port)
    client.loop_start()


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    """A real Mosquitto as the server runs it, stopped after the test."""
    require_mosquitto()
    certs = ensure_certificates(tmp_path, ["127.0.0.1"])
    started = Broker(BrokerSettings(tmp_path, ServerAddress("127.0.0.1", 0),
                                    certs.leaf_cert_path, certs.leaf_key_path),
                     paired=lambda: [])
    started.prepare()
    started.start()
    yield started
    started.stop()


def test_a_message_whose_batch_had_not_committed_comes_again_after_a_reconnect(broker):
    held = HeldIngest()
    link = MasterLink(broker, held)  # type: ignore[arg-type]
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher")
    try:
        connection = link.ingest_connection
        acks: list[list[int]] = []
        original_ack = connection.ack

        def noting(generation: int, packet_ids: list[int]) -> None:
            original_ack(generation, packet_ids)
            acks.append(packet_ids)

        connection.ack = noting  # type: ignore[method-assign]
        link.start()
        assert link.wait_connected(10)
        connect_as_server(publisher, broker)
        payload = json.dumps({"id": "e1", "type": "t"})
        publisher.publish("terminals/T1/events", payload, qos=1).wait_for_publish(5)
        assert held.arrived.wait(10), "the message never reached the ingest"
        # The batch is still storing: its connection drops before the acknowledgement.
        sessions = connection.sessions
        connection._sock.shutdown(socket.SHUT_RDWR)  # the link drops
        wait_for(lambda: connection.sessions > sessions, 10, "no reconnect")
        held.commit.set()  # the first batch commits now; its PUBACK belongs to the old link
        wait_for(lambda: len(held.batches) >= 2, 10,
                 "the broker did not deliver the unacknowledged message again")
        assert held.batches[1] == [payload]
        wait_for(lambda: len(acks) >= 2, 10, "the second batch was not acknowledged")
        # Acknowledged this time: nothing more comes, even after another reconnect.
        connection._sock.shutdown(socket.SHUT_RDWR)  # the link drops
        wait_for(lambda: connection.sessions > sessions + 1, 10, "no reconnect")
        assert link.wait_connected(10)
        publisher.publish("terminals/T1/events", "{}", qos=1).wait_for_publish(5)
        wait_for(lambda: len(held.batches) >= 3, 10, "the next message did not arrive")
        assert held.batches[2:] == [["{}"]]
    finally:
        held.commit.set()
        publisher.loop_stop()
        link.stop()


def test_the_acknowledgements_to_terminals_go_out_on_the_ingest_connection_at_qos_1(broker):
    link = MasterLink(broker, HeldIngest())  # type: ignore[arg-type]
    terminal = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="T1-listener")
    received: list[tuple[str, dict, int]] = []
    subscribed = threading.Event()
    terminal.on_message = lambda _c, _u, m: received.append(
        (m.topic, json.loads(m.payload), m.qos))
    terminal.on_subscribe = lambda *_args: subscribed.set()
    try:
        link.start()
        assert link.wait_connected(10)
        connect_as_server(terminal, broker)
        terminal.subscribe("terminals/+/acks", qos=1)
        assert subscribed.wait(10)
        link._acknowledge(Ingested(events={"T1": ["e1", "e2"], "T2": ["e3"]}))
        wait_for(lambda: len(received) >= 2, 10, "the acknowledgements never arrived")
        assert sorted(received) == [("terminals/T1/acks", {"ids": ["e1", "e2"]}, 1),
                                    ("terminals/T2/acks", {"ids": ["e3"]}, 1)]
        # The broker's PUBACKs for them are read and left alone: the connection stays up.
        sessions = link.ingest_connection.sessions
        link._acknowledge(Ingested(events={"T1": ["e4"]}))
        wait_for(lambda: len(received) >= 3, 10, "the next acknowledgement never arrived")
        assert link.ingest_connection.sessions == sessions
    finally:
        terminal.loop_stop()
        link.stop()


def test_a_lone_message_is_stored_without_waiting_out_the_ingest_window(broker):
    """The window is how long a batch may wait for more while messages keep coming; a message
    with nothing after it (an operator's command result) is stored once the stream pauses."""
    held = HeldIngest()
    held.commit.set()
    link = MasterLink(broker, held, ingest_window_ms=60_000)  # type: ignore[arg-type]
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher")
    try:
        link.start()
        assert link.wait_connected(10)
        connect_as_server(publisher, broker)
        publisher.publish("terminals/T1/events", "{}", qos=1).wait_for_publish(5)
        # A bound for a broken build, far under the minute the window would allow.
        assert held.arrived.wait(10), "the lone message waited for the window"
    finally:
        publisher.loop_stop()
        link.stop()
