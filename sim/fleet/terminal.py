"""One simulated terminal on the wire: its MQTT session, status every S seconds, and events.

It behaves as the agent does on MQTT (docs/protocol.md §7): client id = username = serial,
persistent session, subscribed to its commands and the server's event acknowledgements, status
published retained at QoS 1, events at QoS 1 with a fresh id each. What it counts:
- sent: publishes the broker acknowledged (PUBACK) — the broker took responsibility;
- events acknowledged by the server (`acks`): stored and committed, end to end.
The status lag (publish → committed) is measured by the server (master/ingest_stats.py) from
the status's `at`, which is stamped here with milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import ssl
import time
import uuid
from dataclasses import dataclass, field

from batm_common.clock import iso_ms, utcnow
from server.master.ingest_stats import lag_bucket
from sim.fleet.mqtt import MqttConnection
from sim.fleet.provision import SimTerminal

VERSION = 20240101
KEEPALIVE = 60  # seconds: the broker cuts a session silent for 1.5 times this
# Beats are due on a grid of this many seconds: the event loop runs every beat due on one
# wake-up, and their PUBACKs come back together, so the simulator wakes (and is switched to)
# about once per tick instead of twice per message (5,000 terminals at 10 s: 230 → 80 CPU-µs
# a message with 50 ms). Finer than the server's 25 ms batch window (master/link.py), so that
# the server still sees the fleet's messages spread out, as from real terminals; each
# status's `at` is stamped when it is sent.
TICK = 0.01


@dataclass
class Counts:
    published: int = 0
    sent: int = 0  # PUBACKed by the broker
    events_sent: int = 0
    events_acked: int = 0
    connected: int = 0
    failed: list[str] = field(default_factory=list)
    # How late each beat ran against its schedule (master/ingest_stats.py's 10 % buckets): a
    # load generator that falls behind offers less than it claims, and the status lag (stamped
    # when sent) would not show it.
    late: dict[int, int] = field(default_factory=dict)

    def beat_late(self, seconds: float) -> None:
        index = lag_bucket(max(0.0, seconds) * 1000)
        self.late[index] = self.late.get(index, 0) + 1


class FleetTerminal:
    def __init__(self, terminal: SimTerminal, counts: Counts, interval: float,
                 events_every: int):
        self.terminal = terminal
        self.serial = terminal.serial
        self.prefix = f"terminals/{terminal.serial}/"
        self.counts = counts
        self.interval = interval
        self.events_every = events_every
        self.connection: MqttConnection | None = None
        self._pending_events: set[str] = set()
        self._started = time.monotonic()
        # Where in its cycle of events the terminal starts: a fleet's events come at random
        # moments, not all on the same beat. (Counted from 0, every terminal's event fell in the
        # same interval — the sixth, 50 to 60 s into the load — doubling the load for 10 s:
        # the fleet-wide burst after an outage, not the steady state.)
        self._beats = random.randrange(events_every) if events_every else 0
        fixed = {"online": True, "serial": self.serial, "version": VERSION, "slot": "a",
                 "state": "in_service", "screen": "in_service", "last_update": None,
                 "last_sync": None, "last_sync_error": None}
        # uptime, outbox_pending and at go into the %-slots (a serial has no '%' or '"')
        self._template = (json.dumps(fixed)[:-1] + ', "uptime": %.1f, "vpn_handshake_age": '
                          'null, "outbox_pending": %d, "at": "%s"}')

    async def connect(self, tls: ssl.SSLContext, local_host: str | None) -> None:
        host, port = self.terminal.broker.rsplit(":", 1)  # type: ignore[union-attr]
        connection = MqttConnection(on_message=self._on_message, on_puback=self._on_puback)
        await connection.connect(host.strip("[]"), int(port), tls, self.serial, self.serial,
                                 self.terminal.password,
                                 keepalive=max(KEEPALIVE, int(3 * self.interval)),
                                 clean=False, local_host=local_host)
        await connection.subscribe([self.prefix + "commands", self.prefix + "acks"])
        self.connection = connection
        self.counts.connected += 1

    def _on_puback(self, _packet_id: int) -> None:
        self.counts.sent += 1

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic != self.prefix + "acks":
            return  # commands: the fleet answers none (the unpair comes as a revocation)
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            for event_id in json.loads(payload).get("ids", []):
                if event_id in self._pending_events:
                    self._pending_events.discard(event_id)
                    self.counts.events_acked += 1

    def _status(self) -> bytes:
        # What the agent's json.dumps makes, formatted from a template made once: the fleet
        # shares the cores with the server it measures (json.dumps cost 10 µs a status).
        return (self._template % (time.monotonic() - self._started, len(self._pending_events),
                                  iso_ms(utcnow()))).encode()

    def _event(self) -> tuple[str, bytes]:
        event_id = uuid.uuid4().hex
        return event_id, json.dumps({"id": event_id, "type": "fleet_sim", "at": iso_ms(utcnow()),
                                     "data": {"beat": self._beats}}).encode()

    async def run(self, start: float, until: float) -> None:
        """Publish from a random moment of the first interval after `start` until the loop's
        clock reaches `until`, or the broker cuts the session. Each beat is a timer callback,
        not a coroutine's wake-up (a third of the cost). The schedule counts from the
        coordinator's `start`, not from when this process got to it: a process that starts
        its terminals late sends their first beats late (and says so), not fewer beats."""
        connection = self.connection
        assert connection is not None
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        next_beat = start + random.uniform(0, self.interval)  # spread the fleet's beats
        due = math.ceil(next_beat / TICK) * TICK

        def beat() -> None:
            nonlocal next_beat, due
            if finished.done():
                return
            now = loop.time()
            if now >= until or connection.closed.done():
                finished.set_result(None)
                return
            self.counts.beat_late(now - due)
            try:
                connection.publish(self.prefix + "status", self._status(), retain=True)
                self.counts.published += 1
                self._beats += 1
                if self.events_every and self._beats % self.events_every == 0:
                    event_id, payload = self._event()
                    connection.publish(self.prefix + "events", payload)
                    self._pending_events.add(event_id)
                    self.counts.published += 1
                    self.counts.events_sent += 1
            except Exception as exc:  # cut while publishing: the session ended
                self.counts.failed.append(f"{self.serial}: {exc}")
                finished.set_result(None)
                return
            next_beat += self.interval
            due = math.ceil(next_beat / TICK) * TICK
            loop.call_at(due, beat)

        def cut(_closed: asyncio.Future) -> None:
            if not finished.done():
                finished.set_result(None)

        connection.closed.add_done_callback(cut)
        loop.call_at(due, beat)
        await finished

    @property
    def alive(self) -> bool:
        return self.connection is not None and not self.connection.closed.done()

    @property
    def events_unacknowledged(self) -> int:
        return len(self._pending_events)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


async def keep_alive(terminals: list[FleetTerminal]) -> None:
    """Ping every connected terminal each third of KEEPALIVE, until cancelled: while the rest
    of a large fleet connects (50,000 take minutes) and after the load, when no status keeps
    the sessions alive. Not during the load: its statuses do, and pings would add to it."""
    while True:
        await asyncio.sleep(KEEPALIVE / 3)
        for terminal in terminals:
            if terminal.alive:
                terminal.connection.ping()  # type: ignore[union-attr]
