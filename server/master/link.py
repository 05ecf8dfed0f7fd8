"""The server's own MQTT client: dynsec administration, and the terminals' messages into the DB.

It connects to the broker's loopback listener as the dynsec admin user, with a persistent
session (client id SERVER_CLIENT_ID, outside the terminals' namespace: master/broker.py;
clean_session False) and *manual* acknowledgement: a QoS 1
message is acknowledged only after the transaction that stores it has committed. A crash
between receipt and commit therefore loses nothing — the broker redelivers — and the event id
makes the redelivery a no-op.

After the commit the server acknowledges the stored events to their terminal (end to end, not
just to the broker): terminals/<serial>/acks, QoS 1, {"ids": [...]} in messages of at most
ACK_IDS ids. Only then may the terminal delete them from its outbox; an event the broker took
but lost (SIGKILLed before its autosave) is never acknowledged, so the terminal sends it again.
A redelivered or re-sent event that was already stored is acknowledged again.

Messages are stored in batches by one worker thread (one commit per batch), which is what makes
an outbox of a thousand events drain in seconds rather than minutes. The worker counts what it
stored, its CPU time and each status's lag (master/ingest_stats.py), and prunes the status
history once an hour (master/ingest.py).

Several server replicas share the ingestion (issue 12): a replica's ingest connection
subscribes through the shared subscription `$share/batm/terminals/+/<kind>`, so the broker
hands each message to one replica of the group, and each connection has its own client id
(`batm:master:<replica>`, `batm:ingest:<replica>`) — still outside the terminals' namespace
(':'), so no terminal credential can take one over (master/broker.py).

The terminals' messages come in on a connection of their own (master/ingest_client.py, client
id `batm:ingest[:<replica>]`, its own persistent session holding the subscriptions): paho cost
≈ 50 CPU-µs per message on this path (recv() and select() per packet, a Condition per message,
a send() per PUBACK), the own connection reads in bulk and acknowledges a batch in one write,
still only after its commit (bench/ingest_cost.py, docs/deployment.md); the acknowledgements
to terminals go out on it too, a batch's in one write. paho stays the client for the rest:
dynsec, commands, and whatever an upgraded
server's old session still had queued for the terminals' topics (stored and acknowledged the
same way; the session unsubscribes them at every connect).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import secrets
import socket
import threading
import time
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from server.master.broker import Broker
from server.master.dynsec import (
    ADMIN_USER,
    SERVER_CLIENT_ID,
    SHARE_GROUP,
    TERMINAL_ROLE,
)
from server.master.ingest import KINDS, Incoming, Ingest, Ingested
from server.master.ingest_client import IngestConnection, Message
from server.master.ingest_stats import IngestStats
from server.master.options import INGEST_WINDOW_MS, RETENTION_DAYS, replica_problem
from server.master.payloads import MAX_PAYLOAD

log = logging.getLogger("batm-server.master")

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
BATCH = 500
# After the first message of a batch, wait `--ingest-window` for more (master/options.py): a
# batch's fixed cost (session, two reads, commit) is ≈ 2–4 ms of CPU, so at a few hundred
# messages a second batches of one cost ten times more per message than batches of ten
# (measured with batm-sim fleet), and at 1,900 a second batches of 100 ms cost 25-35 % less
# than batches of 25 ms (bench/ingest_cost.py). A batch also closes once nothing more came for
# INGEST_GAP: a few messages (an operator's command result, a quiet fleet) are stored as soon
# as before; only a steady stream fills the window.
INGEST_GAP = 0.025
ACK_IDS = 500  # event ids per acknowledgement message (≤ 33 KB with 64-character ids)
DYNSEC_TIMEOUT = 5.0
# The plugin's answer to a command naming a user it does not hold (clients.c): with several
# brokers, an unpair handled by a replica whose broker does not hold the terminal's account.
CLIENT_NOT_FOUND = "Client not found"
PRUNE_EVERY = 3600.0  # seconds between two prunings of the status history
INGEST_CLIENT_ID = "batm:ingest"


def server_client_id(replica: str | None) -> str:
    return SERVER_CLIENT_ID if replica is None else f"{SERVER_CLIENT_ID}:{replica}"


def ingest_client_id(replica: str | None) -> str:
    """The ingest connection's own client id (master/ingest_client.py): its persistent session
    holds the terminals' subscriptions; outside the terminals' namespace (':') like the other."""
    return INGEST_CLIENT_ID if replica is None else f"{INGEST_CLIENT_ID}:{replica}"


def ingest_filters(replica: str | None) -> list[str]:
    """What the server's client subscribes to: shared between replicas when it is one."""
    plain = [f"terminals/+/{kind}" for kind in KINDS]
    return plain if replica is None else [f"$share/{SHARE_GROUP}/{f}" for f in plain]


def no_delay(_client, _userdata, sock) -> None:
    """TCP_NODELAY: an acknowledgement must not wait for a delayed ACK (Nagle)."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Acknowledges(Protocol):
    """Where a message came from: acknowledges it to the broker once its batch committed."""

    def ack(self, generation: int, packet_ids: list[int]) -> None: ...


class MasterUnavailable(Exception):
    """The broker did not answer; str() says so."""


class MasterLink:
    def __init__(self, broker: Broker, ingest: Ingest, replica: str | None = None,
                 history_days: float = RETENTION_DAYS,
                 ingest_window_ms: float = INGEST_WINDOW_MS):
        if replica is not None and (problem := replica_problem(replica)):
            raise ValueError(problem)
        self.broker = broker
        self._ingest = ingest
        self.replica = replica
        self.client_id = server_client_id(replica)
        self.stats = IngestStats()
        self._history_days = history_days
        self._window = ingest_window_ms / 1000
        self._next_prune = time.monotonic() + 60  # not in the start-up rush
        self.connected = threading.Event()
        # (who acknowledges, its connection's generation, messages): a chunk at a time
        self._queue: queue.Queue[tuple[Acknowledges, int, list[Message]] | None] = queue.Queue()
        self._generation = 0  # bumps on every (re)connect: mids of an older one are void
        self.ingest_connection = IngestConnection(
            "127.0.0.1", broker.admin_port, ingest_client_id(replica), ADMIN_USER,
            broker.admin_password, ingest_filters(replica),
            lambda generation, messages: self._queue.put(
                (self.ingest_connection, generation, messages)))
        self._pending: dict[str, tuple[threading.Event, list]] = {}
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="master-ingest", daemon=True)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False,
            manual_ack=True, reconnect_on_failure=True,
        )
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_socket_open = no_delay

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.client.username_pw_set(
            ADMIN_USER, self.broker.admin_password)  # dynsec admin (master/broker.py)
        self._worker.start()
        self.ingest_connection.start()
        self.client.connect_async("127.0.0.1", self.broker.admin_port, keepalive=10)
        self.client.loop_start()

    def stop(self) -> None:
        self.ingest_connection.stop()
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()
        self._queue.put(None)
        self._worker.join(5)

    def wait_connected(self, timeout: float) -> bool:
        """Both connections up: paho's (dynsec, publishing) and the subscribed ingest one."""
        deadline = time.monotonic() + timeout
        return (self.connected.wait(timeout) and self.ingest_connection.subscribed.wait(
            max(0.0, deadline - time.monotonic())))

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.error("master: the broker refused the server's client: %s", reason_code)
            return
        with self._lock:
            self._generation += 1
        # The terminals' topics are the ingest connection's (master/ingest_client.py); this
        # session held them before (an upgraded server) or as another replica: not twice.
        # What it had queued still arrives here and is stored and acknowledged as before.
        plain = ingest_filters(None)
        client.unsubscribe(plain + [f"$share/{SHARE_GROUP}/{f}" for f in plain])
        client.subscribe([(RESPONSE_TOPIC, 1)])
        self.connected.set()
        log.info("master: connected to the broker")

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:  # nothing would be stored: say so loudly
            log.error("master: the broker refused the server's subscriptions (%s)",
                      ", ".join(refused))

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        log.warning("master: disconnected from the broker (%s)", reason_code)

    def _on_message(self, client, _userdata, message: mqtt.MQTTMessage) -> None:
        if message.topic == RESPONSE_TOPIC:
            self._dynsec_response(message.payload)
            client.ack(message.mid, message.qos)
            return
        self._queue.put((self, self._generation,
                         [(message.topic, message.payload, message.mid, message.qos)]))

    def ack(self, generation: int, packet_ids: list[int]) -> None:
        """Acknowledge what this (paho) connection delivered, unless it reconnected since."""
        with self._lock:
            current = self._generation
        if generation != current:
            return
        for mid in packet_ids:
            with contextlib.suppress(Exception):
                self.client.ack(mid, 1)

    # ------------------------------------------------------------------ ingest

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            chunks = [first]
            count = len(first[2])
            now = time.monotonic()
            closes, quiet_by = now + self._window, now + INGEST_GAP
            while count < BATCH:
                try:
                    item = self._queue.get(
                        timeout=max(0.0, min(closes, quiet_by) - time.monotonic()))
                except queue.Empty:
                    break
                quiet_by = time.monotonic() + INGEST_GAP
                if item is None:
                    self._queue.put(None)
                    break
                chunks.append(item)
                count += len(item[2])
            incoming = []
            for _source, _generation, messages in chunks:
                for topic, payload, _packet_id, _qos in messages:
                    parts = topic.split("/")
                    if len(parts) == 3 and parts[0] == "terminals" and parts[2] in KINDS:
                        if len(payload) > MAX_PAYLOAD:
                            payload = payload[: MAX_PAYLOAD + 1]  # refused as oversized
                        incoming.append(Incoming(parts[1], parts[2], payload))
            cpu = time.thread_time()
            stored = self._ingest.ingest_until_stored(incoming)
            self.stats.record(stored.stored, stored.refused, time.thread_time() - cpu,
                              stored.status_at, time.time())
            self._acknowledge(stored)
            self._prune_when_due()
            # Only now, the batch committed: the broker may forget these messages.
            for source, generation, messages in chunks:
                source.ack(generation, [m[2] for m in messages if m[3] > 0])

    def _prune_when_due(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY
        try:
            removed = self._ingest.prune_history(self._history_days)
        except Exception as exc:  # the next hour tries again; ingestion must go on
            log.warning("master: pruning the status history failed (%s)", exc)
            return
        if removed:
            log.info("master: %d status history row(s) older than %g days deleted", removed,
                     self._history_days)

    def _acknowledge(self, stored: Ingested) -> None:
        """Tell each terminal which of its events are committed: the batch's acknowledgements
        go out in one write on the ingest connection (through paho each was a publish of its
        own and a PUBACK round). One that cannot go out (the broker is down) is not retried:
        the terminal re-sends what stays unacknowledged."""
        messages = []
        for serial, ids in stored.events.items():
            for start in range(0, len(ids), ACK_IDS):
                messages.append((f"terminals/{serial}/acks",
                                 json.dumps({"ids": ids[start:start + ACK_IDS]}).encode()))
        self.ingest_connection.publish(messages)

    # ------------------------------------------------------------------ publishing

    def send_command(self, serial: str, command: dict) -> None:
        payload = json.dumps(command).encode()
        info = self.client.publish(f"terminals/{serial}/commands", payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            raise MasterUnavailable(f"cannot queue the command: {mqtt.error_string(info.rc)}")

    def clear_status(self, serial: str) -> None:
        with contextlib.suppress(Exception):
            self.client.publish(f"terminals/{serial}/status", b"", qos=1, retain=True)

    # ------------------------------------------------------------------ dynsec

    def _dynsec_response(self, payload: bytes) -> None:
        try:
            responses = json.loads(payload).get("responses", [])
        except (ValueError, AttributeError):
            return
        for response in responses:
            correlation = response.get("correlationData") if isinstance(response, dict) else None
            with self._lock:
                waiter = self._pending.get(correlation) if correlation else None
            if waiter is not None:
                waiter[1].append(response)
                waiter[0].set()

    def dynsec(self, commands: list[dict], timeout: float = DYNSEC_TIMEOUT) -> list[dict]:
        """Run dynsec commands; returns each response ({"command", "error"?}) in order."""
        if not self.connected.is_set():
            # Never wait for a broker that is down: callers run on the server's event loop.
            raise MasterUnavailable("the broker is not reachable")
        waiters = []
        for command in commands:
            correlation = secrets.token_hex(8)
            command = dict(command, correlationData=correlation)
            waiter: tuple[threading.Event, list] = (threading.Event(), [])
            with self._lock:
                self._pending[correlation] = waiter
            waiters.append((correlation, waiter))
            info = self.client.publish(CONTROL_TOPIC, json.dumps({"commands": [command]}), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise MasterUnavailable(f"the broker is not reachable ({info.rc})")
        deadline = time.monotonic() + timeout
        results = []
        try:
            for _correlation, (event, answers) in waiters:
                if not event.wait(max(0.0, deadline - time.monotonic())):
                    raise MasterUnavailable("the broker did not answer a dynsec command in time")
                results.append(answers[0])
        finally:
            with self._lock:
                for correlation, _ in waiters:
                    self._pending.pop(correlation, None)
        return results

    def grant(self, serial: str, password: str, note: str | None = None) -> None:
        """(Re)create the terminal's MQTT user with this password, bound to its serial, in the
        terminals' role (its own topics follow from its username: master/dynsec.py).

        One of the plugin's whole-file saves, two when a user is replaced: deleting it first
        ends a session opened with older credentials and clears a user a revocation left
        disabled (`revoke`); it saves nothing when there is none. `note` is kept as the user's
        text name (master/accounts.py: the pairing it is for)."""
        responses = self.dynsec([
            {"command": "deleteClient", "username": serial},
            # Bound to its own id: its credentials cannot take over another client's session.
            {"command": "createClient", "username": serial, "password": password,
             "clientid": serial, "roles": [{"rolename": TERMINAL_ROLE}],
             **({"textname": note} if note else {})},
        ])
        error = responses[1].get("error")
        if error:
            raise MasterUnavailable(f"the broker refused createClient: {error}")
        log.info("master: MQTT credentials issued for %s", serial)

    def bind_client_id(self, serial: str, client_id: str) -> None:
        """Let the terminal's MQTT user connect only with this client id (the VPN's binding,
        vpn/gate.py); MasterUnavailable when the broker refuses or does not answer."""
        responses = self.dynsec([{"command": "setClientId", "username": serial,
                                  "clientid": client_id}])
        errors = [r.get("error") for r in responses if r.get("error")]
        if errors:
            raise MasterUnavailable(f"binding the client id failed: {errors[0]}")

    def revoke(self, serial: str) -> bool:
        """Disable the terminal's MQTT user: its live session ends and it cannot reconnect.

        One command, waited for. The plugin kicks the session before it saves, but it rewrites
        its whole file after every command that changes something (Mosquitto 2.0, even several
        commands in one message: ≈ 10 ms of broker CPU per MB, ≈ 0.3 KB per terminal), and the
        broker does nothing else meanwhile. Deleting the user here too made two saves per
        unpair, and the next unpair's kick waited behind the previous one's delete
        (bench/revoke_latency.py). A disabled user is refused at every connect (the plugin
        checks `disabled` before the password) and stays so in the file; the next broker start
        removes it with the other users of terminals no longer paired (master/broker.py), and a
        grant for the serial (a re-pairing) replaces it."""
        try:
            responses = self.dynsec([{"command": "disableClient", "username": serial}])
        except MasterUnavailable as exc:
            # The broker start reconciles with the database, so this takes effect then.
            log.warning("master: revoking %s now failed (%s); it is revoked at the broker's "
                        "next start", serial, exc)
            return False
        self.clear_status(serial)
        error = responses[0].get("error")
        if error == CLIENT_NOT_FOUND:
            # Nothing to end here; the owner's replica revokes it (master/accounts.py).
            log.debug("master: %s has no MQTT account on this broker", serial)
        else:
            log.info("master: MQTT access of %s revoked (%s)", serial, error or "session closed")
        return True
