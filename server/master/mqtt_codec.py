"""MQTT 3.1.1 packets, as much as the server's ingest connection needs (master/ingest_client.py).

Building CONNECT, SUBSCRIBE, PUBACK, PINGREQ and DISCONNECT, and reading a byte stream into
packets: PUBLISH as (topic, payload, packet id, qos), anything else as (first byte, body). The
packets both our clients send are built in batm_common/mqtt_packets.py; this side reads in bulk,
which the fleet simulator (sim/fleet/mqtt.py) does not.
"""

from __future__ import annotations

import struct

from batm_common.mqtt_packets import (
    CONNACK,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBLISH,
    SUBACK,
    SUBSCRIBE,
    connect_packet,
    packet,
    publish_packet,
    text,
)

# The packet types and builders are offered from here too: ingest_client.py speaks one module.
__all__ = ["CONNACK", "CONNACK_REASONS", "DISCONNECT_PACKET", "PINGREQ_PACKET", "PINGRESP",
           "PUBACK", "PUBLISH", "SUBACK", "SUBSCRIBE", "PacketReader", "ProtocolError",
           "connect_packet", "packet", "pubacks", "publish_packet", "subscribe_packet", "text"]

MAX_REMAINING = 268_435_455  # the largest length the 4-byte encoding can say
CONNACK_REASONS = {1: "protocol version", 2: "client id rejected", 3: "server unavailable",
                   4: "bad user name or password", 5: "not authorised"}

PINGREQ_PACKET = bytes([PINGREQ << 4, 0])
DISCONNECT_PACKET = bytes([DISCONNECT << 4, 0])
_PUBACK = struct.Struct("!BBH")


class ProtocolError(Exception):
    """The broker sent something this client cannot read, or refused it; str() says what."""


def subscribe_packet(packet_id: int, filters: list[str]) -> bytes:
    body = struct.pack("!H", packet_id) + b"".join(text(f) + b"\x01" for f in filters)  # QoS 1
    return packet(SUBSCRIBE, 0x02, body)


def pubacks(packet_ids: list[int]) -> bytes:
    """The PUBACKs of these messages, one after the other (one write for a batch)."""
    pack = _PUBACK.pack
    return b"".join(pack(PUBACK << 4, 2, packet_id) for packet_id in packet_ids)


class PacketReader:
    """Packets out of a byte stream that arrives in pieces of any size."""

    def __init__(self) -> None:
        self._rest = b""

    def read(self, data) -> tuple[list[tuple[str, bytes, int, int]], list[tuple[int, bytes]]]:
        """The complete packets `data` ends (with what was left over before): PUBLISHes as
        (topic, payload, packet id — 0 at QoS 0 —, qos), the others as (first byte, body)."""
        buf = self._rest + data if self._rest else bytes(data)
        size = len(buf)
        pos = 0
        messages: list[tuple[str, bytes, int, int]] = []
        others: list[tuple[int, bytes]] = []
        while size - pos >= 2:
            head = buf[pos]
            length, shift, at, complete = 0, 0, pos + 1, False
            while at < size:
                byte = buf[at]
                at += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    complete = True
                    break
                shift += 7
                if shift > 21:
                    raise ProtocolError("a packet's length is over four bytes")
            if not complete:
                break  # the length itself is still incomplete
            end = at + length
            if end > size:
                break
            if head >> 4 == PUBLISH:
                qos = (head >> 1) & 3
                if length < 2:
                    raise ProtocolError("a PUBLISH without a topic")
                topic_end = at + 2 + (buf[at] << 8 | buf[at + 1])
                topic = buf[at + 2:topic_end].decode("utf-8", "replace")
                if qos:
                    packet_id = buf[topic_end] << 8 | buf[topic_end + 1]
                    topic_end += 2
                else:
                    packet_id = 0
                if topic_end > end:
                    raise ProtocolError("a PUBLISH shorter than its topic")
                messages.append((topic, buf[topic_end:end], packet_id, qos))
            else:
                others.append((head, buf[at:end]))
            pos = end
        self._rest = buf[pos:]
        return messages, others
