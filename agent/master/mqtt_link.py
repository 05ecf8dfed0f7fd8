"""The MQTT adapter: one connection to the master service's broker (paho-mqtt 2.x).

paho runs its network loop in its own thread; everything it reports is marshalled into the
daemon's asyncio loop with `call_soon_threadsafe`, so the daemon's state is only ever touched
from its loop.

Trust: TLS with the CA pinned at pairing (the chain is verified before the password is sent;
hostname not checked, terminals are pointed at IPs), then the leaf key is compared with the
pinned SPKI SHA-256, exactly like the gate. A link is one connection: it never reconnects by
itself. The state machine reconnects through a fresh check-in with capped, jittered backoff
(agent.backoff), and a CONNACK refusing the credentials ends in MasterRejected — the terminal
goes back to pairing instead of knocking again.

Topics (docs/protocol.md §7) under terminals/<serial>/: status (retained; last will
{"online": false}), events (QoS 1), commands and acks (subscribed, QoS 1), results. The
session is persistent (clean_session False), so the server's acknowledgements and commands sent
while the terminal was away are delivered when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion

from agent.gate_client import tls_context
from agent.master.credentials import MasterCredentials
from agent.settings import ServerPin

log = logging.getLogger(__name__)

KEEPALIVE = 5  # seconds: a cut link is noticed within 1.5 × this
CONNECT_TIMEOUT = 5.0
REJECTED = (134, 135)  # CONNACK: bad user name or password, not authorized
MAX_INFLIGHT = 200


@dataclass(frozen=True)
class LinkEvent:
    kind: str  # "connected" | "lost" | "rejected"
    reason: str = ""


def _spki_sha256(der: bytes) -> str:
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def no_delay(_client, _userdata, sock) -> None:
    """Small QoS 1 packets answered by small packets: Nagle's algorithm would hold each back
    for a delayed ACK (tens of ms per hop of an event's round trip)."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class MqttLink:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, generation: int, serial: str,
        credentials: MasterCredentials, pin: ServerPin,
        on_event: Callable[[int, LinkEvent], None],
        on_command: Callable[[bytes], None],
        on_acks: Callable[[list[int]], None],
        on_server_acks: Callable[[bytes], None] = lambda _payload: None,
        on_problem: Callable[[str], None] = lambda _error: None,
    ):
        self.loop = loop
        self.generation = generation
        self.serial = serial
        self.credentials = credentials
        self.pin = pin
        self.prefix = credentials.topic_prefix
        self._on_event = on_event
        self._on_command = on_command
        self._on_acks = on_acks
        self._on_server_acks = on_server_acks
        self._on_problem = on_problem
        self._closing = False
        self._reported = False  # connected/lost/rejected: each link reports its end once
        self._acks: list[int] = []
        self._acks_lock = threading.Lock()
        self.connected = False
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=credentials.client_id or serial,
            clean_session=False,
            reconnect_on_failure=False,
        )
        client.username_pw_set(credentials.username, credentials.password)
        client.tls_set_context(tls_context(pin))
        client.will_set(self.prefix + "status", json.dumps({"online": False}), qos=1,
                        retain=True)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_connect_fail = self._on_connect_fail
        client.on_subscribe = self._on_subscribe
        client.on_socket_open = no_delay
        self.client = client

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        broker = self.credentials.broker
        self.client.connect_timeout = CONNECT_TIMEOUT
        self.client.connect_async(broker.host, broker.port, keepalive=KEEPALIVE)
        self.client.loop_start()

    def close(self) -> None:
        """Disconnect cleanly (no last will) and stop the thread. Safe to call twice."""
        self._closing = True
        self.connected = False
        with contextlib.suppress(Exception):
            self.client.disconnect()
        threading.Thread(target=self._stop_loop, daemon=True).start()

    def _stop_loop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.loop_stop()

    def _report(self, event: LinkEvent) -> None:
        if self._closing:
            return
        if event.kind != "connected":
            if self._reported and not self.connected:
                return  # already reported its end
            self.connected = False
        else:
            self.connected = True
        self._reported = True
        self.loop.call_soon_threadsafe(self._on_event, self.generation, event)

    # ------------------------------------------------------------------ paho callbacks

    def _on_connect_fail(self, _client, _userdata) -> None:
        self._report(LinkEvent("lost", f"cannot connect to {self.credentials.broker}"))
        self.close()

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            kind = "rejected" if reason_code.value in REJECTED else "lost"
            self._report(LinkEvent(kind, f"the broker refused the connection: {reason_code}"))
            self.close()
            return
        try:
            der = client.socket().getpeercert(binary_form=True)
            seen = _spki_sha256(der)
        except Exception as exc:  # no TLS socket, or a certificate we cannot read
            seen = f"unreadable ({exc})"
        if seen != self.pin.spki_sha256:
            self._report(LinkEvent("lost", "the broker's key is not the pinned server key"))
            self.close()
            return
        client.subscribe([(self.prefix + "commands", 1), (self.prefix + "acks", 1)])
        self._report(LinkEvent("connected"))

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused and not self._closing:
            # Without acks the outbox never drains (events are re-sent, never deleted): say so.
            error = (f"the broker refused the subscription to {self.prefix}commands/acks "
                     f"({', '.join(refused)})")
            log.error("%s", error)
            self.loop.call_soon_threadsafe(self._on_problem, error)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self._report(LinkEvent("lost", f"connection lost ({reason_code})"))
        if not self._closing:
            self.close()

    def _on_message(self, _client, _userdata, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.prefix + "commands":
            self.loop.call_soon_threadsafe(self._on_command, bytes(message.payload))
        elif message.topic == self.prefix + "acks":
            self.loop.call_soon_threadsafe(self._on_server_acks, bytes(message.payload))

    def _on_publish(self, _client, _userdata, mid, _reason_code, _properties) -> None:
        # PUBACKs come one by one; hand them over in batches (one DB transaction each).
        with self._acks_lock:
            first = not self._acks
            self._acks.append(mid)
        if first:
            self.loop.call_soon_threadsafe(self._flush_acks)

    def _flush_acks(self) -> None:
        with self._acks_lock:
            acks, self._acks = self._acks, []
        if acks:
            self._on_acks(acks)

    # ------------------------------------------------------------------ publishing

    def publish(self, suffix: str, payload: bytes, qos: int = 1, retain: bool = False
                ) -> int | None:
        """Queue a message under terminals/<serial>/; its mid, or None when not connected."""
        if not self.connected:
            return None
        info = self.client.publish(self.prefix + suffix, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return None
        return info.mid
