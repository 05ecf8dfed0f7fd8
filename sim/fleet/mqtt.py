"""A minimal MQTT 3.1.1 client on asyncio streams: what one simulated terminal needs, no more.

Why not paho (which the agent uses): paho runs a thread per client, and a fleet of 50,000
terminals in one process needs one event loop and a few kilobytes per connection. This speaks
the protocol itself — CONNECT (username, password, persistent session), PUBLISH at QoS 1 with
PUBACKs both ways, SUBSCRIBE, PINGREQ, DISCONNECT — over the same TLS the agent uses (the
server's CA, the AEAD suites the broker offers).

A connection reports its end once through `closed` (a Future set to the reason), so the fleet
can measure when the broker cut it (an unpair's revocation).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections.abc import Callable

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14


class MqttError(Exception):
    """The broker refused or dropped the connection; str() says how."""


def _varint(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _text(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(data)) + data


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _varint(len(body)) + body


def connect_packet(client_id: str, username: str, password: str, keepalive: int,
                   clean: bool) -> bytes:
    flags = 0x80 | 0x40 | (0x02 if clean else 0)
    body = _text("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    body += _text(client_id) + _text(username) + _text(password)
    return packet(CONNECT, 0, body)


def publish_packet(topic: str, payload: bytes, packet_id: int, retain: bool = False) -> bytes:
    body = _text(topic) + struct.pack("!H", packet_id) + payload
    return packet(PUBLISH, 0x02 | (0x01 if retain else 0), body)  # QoS 1


def client_tls(ca_file: str) -> ssl.SSLContext:
    """The server's CA verifies the broker's certificate; the hostname is not checked, as the
    terminals are pointed at IPs (agent/gate_client.py)."""
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = False
    return context


class MqttConnection:
    """One connected client. `on_message(topic, payload)` gets what its subscriptions bring;
    `on_puback(packet_id)` each broker acknowledgement of a publish."""

    def __init__(self, on_message: Callable[[str, bytes], None] = lambda _t, _p: None,
                 on_puback: Callable[[int], None] = lambda _mid: None):
        self.on_message = on_message
        self.on_puback = on_puback
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connack: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._suback: asyncio.Future[bytes] | None = None
        self._task: asyncio.Task | None = None
        self._next_id = 0

    async def connect(self, host: str, port: int, tls: ssl.SSLContext | None, client_id: str,
                      username: str, password: str, *, keepalive: int = 60,
                      clean: bool = False, local_host: str | None = None,
                      timeout: float = 30.0) -> None:
        local = (local_host, 0) if local_host else None
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls, local_addr=local,
                                    server_hostname="" if tls else None),
            timeout)
        self._writer.write(connect_packet(client_id, username, password, keepalive, clean))
        self._task = asyncio.create_task(self._read_loop())
        code = await asyncio.wait_for(asyncio.shield(self._connack), timeout)
        if code != 0:
            raise MqttError(f"the broker refused the connection (CONNACK {code})")

    def next_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """Queue a QoS 1 publish; its packet id (on_puback names it when the broker took it)."""
        if self._writer is None or self.closed.done():
            raise MqttError("not connected")
        packet_id = self.next_id()
        self._writer.write(publish_packet(topic, payload, packet_id, retain))
        return packet_id

    async def subscribe(self, topics: list[str], timeout: float = 30.0) -> None:
        assert self._writer is not None
        body = struct.pack("!H", self.next_id())
        for topic in topics:
            body += _text(topic) + b"\x01"
        self._suback = asyncio.get_running_loop().create_future()
        self._writer.write(packet(SUBSCRIBE, 0x02, body))
        granted = await asyncio.wait_for(self._suback, timeout)
        if any(code == 0x80 for code in granted):
            raise MqttError(f"the broker refused a subscription to {', '.join(topics)}")

    def ping(self) -> None:
        if self._writer is not None and not self.closed.done():
            self._writer.write(packet(PINGREQ, 0, b""))

    async def drain(self) -> None:
        if self._writer is not None and not self.closed.done():
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()

    async def close(self) -> None:
        """DISCONNECT and close (no will, as a clean shutdown)."""
        if self._writer is None:
            return
        with contextlib.suppress(Exception):
            if not self.closed.done():
                self._writer.write(packet(DISCONNECT, 0, b""))
            self._writer.close()
        self._end("closed by the client")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    def _end(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        if not self._connack.done():
            self._connack.set_exception(MqttError(reason))
        if self._suback is not None and not self._suback.done():
            self._suback.set_exception(MqttError(reason))

    async def _read_loop(self) -> None:
        reader = self._reader
        assert reader is not None
        reason = "the broker closed the connection"
        try:
            while True:
                head = await reader.readexactly(1)
                length, shift = 0, 0
                while True:
                    byte = (await reader.readexactly(1))[0]
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                body = await reader.readexactly(length) if length else b""
                self._dispatch(head[0], body)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError) as exc:
            if not isinstance(exc, asyncio.IncompleteReadError):
                reason = f"connection error: {exc}"
        finally:
            self._end(reason)
            if self._writer is not None:
                with contextlib.suppress(Exception):
                    self._writer.close()

    def _dispatch(self, head: int, body: bytes) -> None:
        kind = head >> 4
        if kind == PUBACK:
            self.on_puback(struct.unpack("!H", body[:2])[0])
        elif kind == PUBLISH:
            qos = (head >> 1) & 3
            (topic_len,) = struct.unpack("!H", body[:2])
            topic = body[2:2 + topic_len].decode()
            rest = body[2 + topic_len:]
            if qos:
                packet_id, rest = rest[:2], rest[2:]
                assert self._writer is not None
                self._writer.write(packet(PUBACK, 0, packet_id))
            self.on_message(topic, rest)
        elif kind == CONNACK:
            if not self._connack.done():
                self._connack.set_result(body[1])
        elif kind == SUBACK and self._suback is not None and not self._suback.done():
            self._suback.set_result(body[2:])
        # PINGRESP and the rest need nothing
