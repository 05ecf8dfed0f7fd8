"""A minimal MQTT 3.1.1 client on asyncio: what one simulated terminal needs, no more.

Why not paho (which the agent uses): paho runs a thread per client, and a fleet of 50,000
terminals needs one event loop per process and a few kilobytes per connection. This speaks
the protocol itself — CONNECT (username, password, persistent session), PUBLISH at QoS 1 with
PUBACKs both ways, SUBSCRIBE, PINGREQ, DISCONNECT — over the same TLS the agent uses (the
server's CA, the AEAD suites the broker offers).

It is an asyncio Protocol doing its own TLS through memory BIOs (ssl.SSLObject), not streams
over asyncio's TLS transport: the fleet shares two cores with the server it measures, and per
message the streams cost a task wake-up and three awaits, and asyncio's pure-Python TLS layer
its state machine and a 256 KiB read buffer per connection (3.11's sslproto: 1.4 GB for 5,000
terminals). Here a received packet is parsed in the data_received callback, and a publish is one
SSLObject.write and one send.

A connection reports its end once through `closed` (a Future set to the reason), so the fleet
can measure when the broker cut it (an unpair's revocation).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections.abc import Callable

from batm_common.mqtt_packets import (
    CONNACK,
    DISCONNECT,
    PINGREQ,
    PUBACK,
    PUBLISH,
    SUBACK,
    SUBSCRIBE,
    connect_packet,
    packet,
    publish_packet,
    text,
)


class MqttError(Exception):
    """The broker refused or dropped the connection; str() says how."""


def client_tls(ca_file: str) -> ssl.SSLContext:
    """The server's CA verifies the broker's certificate; the hostname is not checked, as the
    terminals are pointed at IPs (agent/gate_client.py)."""
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = False
    return context


class MqttConnection(asyncio.Protocol):
    """One connected client. `on_message(topic, payload)` gets what its subscriptions bring;
    `on_puback(packet_id)` each broker acknowledgement of a publish."""

    def __init__(self, on_message: Callable[[str, bytes], None] = lambda _t, _p: None,
                 on_puback: Callable[[int], None] = lambda _mid: None):
        self.on_message = on_message
        self.on_puback = on_puback
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[str] = loop.create_future()
        self._connack: asyncio.Future[int] = loop.create_future()
        self._handshake: asyncio.Future[None] | None = None
        self._suback: asyncio.Future[bytes] | None = None
        self._transport: asyncio.Transport | None = None
        self._tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._buffer = b""
        self._writable: asyncio.Future[None] | None = None  # while the transport is paused
        self._next_id = 0

    async def connect(self, host: str, port: int, tls: ssl.SSLContext | None, client_id: str,
                      username: str, password: str, *, keepalive: int = 60,
                      clean: bool = False, local_host: str | None = None,
                      timeout: float = 30.0) -> None:
        local = (local_host, 0) if local_host else None
        loop = asyncio.get_running_loop()

        async def session() -> int:
            await loop.create_connection(lambda: self, host, port, local_addr=local)
            if tls is not None:
                self._tls = tls.wrap_bio(self._incoming, self._outgoing)
                self._handshake = loop.create_future()
                self._step_handshake()
                await self._handshake
            self._send(connect_packet(client_id, username, password, keepalive, clean))
            return await asyncio.shield(self._connack)

        try:
            code = await asyncio.wait_for(session(), timeout)
        except BaseException:
            self._abort("connect failed")
            raise
        if code != 0:
            self._abort("refused")
            raise MqttError(f"the broker refused the connection (CONNACK {code})")

    def next_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """Queue a QoS 1 publish; its packet id (on_puback names it when the broker took it)."""
        if self._transport is None or self.closed.done():
            raise MqttError("not connected")
        packet_id = self.next_id()
        self._send(publish_packet(topic, payload, packet_id, retain))
        return packet_id

    async def subscribe(self, topics: list[str], timeout: float = 30.0) -> None:
        assert self._transport is not None
        body = struct.pack("!H", self.next_id())
        for topic in topics:
            body += text(topic) + b"\x01"
        self._suback = asyncio.get_running_loop().create_future()
        self._send(packet(SUBSCRIBE, 0x02, body))
        granted = await asyncio.wait_for(self._suback, timeout)
        if any(code == 0x80 for code in granted):
            raise MqttError(f"the broker refused a subscription to {', '.join(topics)}")

    def ping(self) -> None:
        if self._transport is not None and not self.closed.done():
            self._send(packet(PINGREQ, 0, b""))

    async def drain(self) -> None:
        """Until the transport takes writes again (it pauses above its high-water mark)."""
        if self._writable is not None and not self.closed.done():
            await asyncio.wait([self._writable, self.closed],
                               return_when=asyncio.FIRST_COMPLETED)

    async def close(self) -> None:
        """DISCONNECT and close (no will, as a clean shutdown)."""
        if self._transport is None:
            return
        if not self.closed.done():
            with contextlib.suppress(Exception):
                self._send(packet(DISCONNECT, 0, b""))
        self._abort("closed by the client")

    # ---------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(f"connection error: {exc}" if exc else "the broker closed the connection")

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def data_received(self, data: bytes) -> None:
        if self._tls is None:
            self._feed(data)
            return
        self._incoming.write(data)
        if self._handshake is not None and not self._handshake.done() \
                and not self._step_handshake():
            return
        plain = []
        try:
            while chunk := self._tls.read(65536):
                plain.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            self._abort(f"connection error: {exc}")
            return
        self._flush()
        if plain:
            self._feed(b"".join(plain))

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost says the broker closed it

    # ---------------------------------------------------------------- internals

    def _step_handshake(self) -> bool:
        """One step of the TLS handshake with what arrived; True once it is complete."""
        assert self._tls is not None and self._handshake is not None
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return False
        except ssl.SSLError as exc:
            self._flush()
            self._abort(f"TLS handshake failed: {exc}")
            return False
        self._flush()
        self._handshake.set_result(None)
        return True

    def _send(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise MqttError("not connected")
        if self._tls is None:
            self._transport.write(data)
            return
        self._tls.write(data)
        self._flush()

    def _flush(self) -> None:
        out = self._outgoing.read()
        if out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(out)

    def _abort(self, reason: str) -> None:
        if self._transport is not None:
            self._transport.close()
        self._end(reason)

    def _end(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        for future in (self._connack, self._handshake, self._suback, self._writable):
            if future is not None and not future.done():
                future.set_exception(MqttError(reason))
                future.exception()  # retrieved: nobody may be waiting any more

    def _feed(self, data: bytes) -> None:
        """Dispatch every complete packet in what arrived; keep the rest for the next."""
        buffer = self._buffer + data if self._buffer else data
        offset, size = 0, len(buffer)
        while size - offset >= 2:
            length, shift, at = 0, 0, offset + 1
            while True:
                if at >= size:
                    self._buffer = buffer[offset:]
                    return
                byte = buffer[at]
                at += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            if size - at < length:
                break
            self._dispatch(buffer[offset], buffer[at:at + length])
            offset = at + length
        self._buffer = buffer[offset:]

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
                with contextlib.suppress(MqttError):
                    self._send(packet(PUBACK, 0, packet_id))
            self.on_message(topic, rest)
        elif kind == CONNACK:
            if not self._connack.done():
                self._connack.set_result(body[1])
        elif kind == SUBACK and self._suback is not None and not self._suback.done():
            self._suback.set_result(body[2:])
        # PINGRESP and the rest need nothing
