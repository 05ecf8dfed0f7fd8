"""The server's receiving MQTT connection: terminals' messages in, PUBACKs only after the commit.

paho-mqtt cost the server ≈ 50 CPU-µs per QoS 1 message on the ingest path (bench/ingest_cost.py,
docs/deployment.md): several recv() calls and a select() per packet, a threading.Condition made
for every message, and one send() per acknowledgement. This connection speaks just what
ingestion needs of MQTT 3.1.1 — CONNECT (persistent session), SUBSCRIBE at QoS 1, PUBLISH in,
PUBACK out, PINGREQ, DISCONNECT — on the broker's loopback listener, with the codec in
master/mqtt_codec.py:
- one thread reads the socket in large chunks and hands each chunk's messages over at once
  (`deliver(generation, messages)`: one queue operation per chunk, not per message);
- `ack(generation, packet_ids)` sends a whole batch's PUBACKs in one write, after the batch
  committed; acknowledgements for an older connection (`generation`) are dropped, since the
  broker redelivers what that connection left unacknowledged;
- `publish(messages)` sends a batch's messages to terminals (the server's acknowledgement of
  their events, master/link.py) at QoS 1 in one write, and does not wait for the broker's
  PUBACKs: a message lost with the connection is made good by the terminal, which sends again
  an event it has no acknowledgement for.
It reconnects on its own (0.1 s, doubling to 1 s), subscribing again each time, as paho did.
paho stays the server's client for everything else (dynsec, commands: master/link.py).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable

from server.master import mqtt_codec as codec

log = logging.getLogger("batm-server.master")

READ_SIZE = 256 * 1024
KEEPALIVE = 10  # seconds; a PINGREQ goes out every KEEPALIVE / 2 without other traffic
CONNECT_TIMEOUT = 10.0
TICK = 1.0  # the reader wakes at least this often (pings, stop)

# (topic, payload, packet id (0 at QoS 0), qos)
Message = tuple[str, bytes, int, int]


class IngestConnection:
    def __init__(self, host: str, port: int, client_id: str, username: str, password: str,
                 filters: list[str], deliver: Callable[[int, list[Message]], None]):
        self._address = (host, port)
        self.client_id = client_id
        self._username = username
        self._password = password
        self._filters = filters
        self._deliver = deliver
        self.subscribed = threading.Event()  # set while connected and subscribed
        self.sessions = 0  # connections the broker accepted so far (a reconnect counts)
        self._generation = 0
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._packet_id = 0  # of our publishes (under _send_lock)
        self._last_send = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="master-ingest-mqtt",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                self._send(codec.DISCONNECT_PACKET)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)

    def ack(self, generation: int, packet_ids: list[int]) -> None:
        """Acknowledge these messages of connection `generation` (all in one write)."""
        if not packet_ids or generation != self._generation:
            return
        with contextlib.suppress(OSError):
            self._send(codec.pubacks(packet_ids), generation)

    def publish(self, messages: list[tuple[str, bytes]]) -> None:
        """Publish (topic, payload) pairs at QoS 1, all in one write; dropped while the
        connection is down."""
        if not messages:
            return
        with self._send_lock:
            packets = []
            for topic, payload in messages:
                self._packet_id = self._packet_id % 0xFFFF + 1
                packets.append(codec.publish_packet(topic, payload, self._packet_id))
        with contextlib.suppress(OSError):
            self._send(b"".join(packets))

    # ------------------------------------------------------------------ the reader thread

    def _send(self, data: bytes, generation: int | None = None) -> None:
        with self._send_lock:
            sock = self._sock
            if sock is None or (generation is not None and generation != self._generation):
                return
            try:
                sock.sendall(data)
            except OSError:
                # Part of a packet may have gone out: the stream is unusable, so end it (the
                # reader reconnects; what was not acknowledged comes again).
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                raise
            self._last_send = time.monotonic()

    def _run(self) -> None:
        delay = 0.1
        while not self._stopping.is_set():
            try:
                self._session()
                delay = 0.1
            except (OSError, codec.ProtocolError) as exc:
                if not self._stopping.is_set():
                    log.warning("master: the ingest connection to the broker failed (%s)", exc)
            except Exception:  # a bug must not end ingestion for good: log it, connect again
                log.exception("master: the ingest connection failed")
            finally:
                self.subscribed.clear()
                self._close()
            self._stopping.wait(delay)
            delay = min(delay * 2, 1.0)

    def _close(self) -> None:
        with self._send_lock:
            sock, self._sock = self._sock, None
            self._generation += 1  # what the closed connection delivered is never acknowledged
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _session(self) -> None:
        sock = socket.create_connection(self._address, timeout=CONNECT_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._send_lock:
            self._sock = sock
            generation = self._generation
        reader = codec.PacketReader()
        self._send(codec.connect_packet(self.client_id, self._username, self._password,
                                        KEEPALIVE, clean=False))
        answer_by = time.monotonic() + CONNECT_TIMEOUT  # CONNACK and SUBACK
        sock.settimeout(TICK)
        buffer = bytearray(READ_SIZE)
        view = memoryview(buffer)
        while not self._stopping.is_set():
            try:
                size = sock.recv_into(buffer)
            except TimeoutError:
                size = -1
            if size == 0:
                raise OSError("the broker closed the connection")
            if size > 0:
                # A persistent session's queued messages may come before the SUBACK.
                messages, others = reader.read(view[:size])
                for head, body in others:
                    self._answer(head >> 4, body)
                if messages:
                    self._deliver(generation, messages)
            if not self.subscribed.is_set() and time.monotonic() > answer_by:
                raise codec.ProtocolError("the broker did not answer the connection in time")
            if time.monotonic() - self._last_send >= KEEPALIVE / 2:
                self._send(codec.PINGREQ_PACKET, generation)

    def _answer(self, kind: int, body: bytes) -> None:
        if kind == codec.CONNACK:
            if len(body) < 2 or body[1] != 0:
                code = body[1] if len(body) >= 2 else None
                raise codec.ProtocolError(
                    f"the broker refused the ingest connection (CONNACK {code}: "
                    f"{codec.CONNACK_REASONS.get(code, 'unknown')})")
            self.sessions += 1
            self._send(codec.subscribe_packet(1, self._filters))
        elif kind == codec.SUBACK:
            refused = [f for f, code in zip(self._filters, body[2:], strict=False)
                       if code == 0x80]
            if refused:  # nothing would be stored: say so loudly, and try again
                log.error("master: the broker refused the server's subscriptions (%s)",
                          ", ".join(refused))
                raise codec.ProtocolError("subscriptions refused")
            self.subscribed.set()
            log.info("master: ingesting from the broker as %s", self.client_id)
        # PINGRESP and the PUBACKs of our publishes need nothing; nothing else is expected
