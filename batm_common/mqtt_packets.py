"""MQTT 3.1.1 packets as bytes: the packet types and the building of the ones both of our own
clients send (CONNECT, PUBLISH at QoS 1) — the server's ingest connection
(server/master/mqtt_codec.py) and the fleet simulator's terminals (sim/fleet/mqtt.py). Each
reads the stream its own way (the server in bulk, the simulator per callback), so reading stays
with them."""

from __future__ import annotations

import struct

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14


def varint(length: int) -> bytes:
    """The remaining-length encoding: 7 bits a byte, the high bit says another follows."""
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def text(value: str | bytes) -> bytes:
    """A length-prefixed UTF-8 string."""
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(data)) + data


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + varint(len(body)) + body


def connect_packet(client_id: str, username: str, password: str, keepalive: int,
                   clean: bool) -> bytes:
    flags = 0x80 | 0x40 | (0x02 if clean else 0)  # user name, password, clean session
    body = text("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    return packet(CONNECT, 0, body + text(client_id) + text(username) + text(password))


def publish_packet(topic: str, payload: bytes, packet_id: int, retain: bool = False) -> bytes:
    """A QoS 1 PUBLISH."""
    body = text(topic) + struct.pack("!H", packet_id) + payload
    return packet(PUBLISH, 0x02 | (0x01 if retain else 0), body)
