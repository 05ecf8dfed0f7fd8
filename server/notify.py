"""Wake long-polls at once: approve wakes the pairing poll, unpair wakes the session poll, a
terminal's status or command result wakes the operator's waits.

The gate, the admin API and the console run in one process and one asyncio loop, so within a
process an in-process notifier is enough. A long-poll registers *before* it reads the state from
the database and waits only afterwards, so a notification that lands between the read and the
wait is never lost.

Several server processes on one PostgreSQL database (replicas behind a load balancer) wake each
other through LISTEN/NOTIFY (Replicas below): a terminal long-polling replica 1 is approved
through replica 2. Only control events cross — pairing, session and command topics, a few per
operator action — never the per-message status topic, which only the operator's own waits on
the ingesting process use (they read the database when their wait ends anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from collections.abc import Callable, Iterator

from sqlalchemy.engine import Engine

from server.db import dialect

log = logging.getLogger(__name__)

CHANNEL = "batm_wake"


def pairing_topic(request_id: str) -> str:
    return f"pairing:{request_id}"


def session_topic(serial: str) -> str:
    return f"session:{serial}"


def session_serial(topic: str) -> str | None:
    """The terminal a session topic names (its access changed); None for other topics."""
    prefix = session_topic("")
    return topic.removeprefix(prefix) if topic.startswith(prefix) else None


def status_topic(serial: str) -> str:
    return f"status:{serial}"


def command_topic(command_id: str) -> str:
    return f"command:{command_id}"


# The topics other server processes on the database are told about (control events).
CROSSING = ("pairing:", "session:", "command:")


class Listener:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def wake(self) -> None:
        # Notifications may come from another thread (a test client, a thread pool).
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._event.set()
        else:
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> bool:
        """True when woken, False when `timeout` seconds passed first."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True


class Notifier:
    def __init__(self) -> None:
        self._listeners: dict[str, set[Listener]] = {}
        # Wakes come from other threads too (ingestion, the replicas' listener): the sets are
        # changed and copied under this lock, never iterated while another thread changes them.
        self._lock = threading.Lock()
        self._closed = False
        self._replicas: Replicas | None = None
        self._followers: list[Callable[[str | None], None]] = []

    @contextlib.contextmanager
    def listen(self, topic: str) -> Iterator[Listener]:
        listener = Listener()
        if self._closed:
            listener.wake()  # shutting down: nobody should start a long wait now
        with self._lock:
            self._listeners.setdefault(topic, set()).add(listener)
        try:
            yield listener
        finally:
            with self._lock:
                listeners = self._listeners.get(topic)
                if listeners is not None:
                    listeners.discard(listener)
                    if not listeners:
                        del self._listeners[topic]

    def notify(self, topic: str) -> None:
        """Wake the waits on `topic` here and, for a control event, in every replica."""
        self.wake_local(topic)
        if self._replicas is not None and topic.startswith(CROSSING):
            self._replicas.send(topic)

    def wake_local(self, topic: str) -> None:
        with self._lock:
            listeners = list(self._listeners.get(topic, ()))
        for listener in listeners:
            listener.wake()

    def follow_replicas(self, follower: Callable[[str | None], None]) -> None:
        """`follower(topic)` for every control event another replica sends, and
        `follower(None)` whenever some may have been missed (the LISTEN connection came up,
        the first time included). Called on the listener's thread: it must only hand over."""
        self._followers.append(follower)

    def unfollow_replicas(self, follower: Callable[[str | None], None]) -> None:
        """Stop telling `follower` (nothing when it was not following)."""
        with contextlib.suppress(ValueError):
            self._followers.remove(follower)

    def from_replica(self, topic: str | None) -> None:
        """What Replicas hears: another replica's control event, or None (events may have been
        missed)."""
        if topic is not None:
            self.wake_local(topic)
        for follower in self._followers:
            follower(topic)

    def share(self, engine: Engine) -> Replicas | None:
        """Cross processes through `engine`'s database when it can hold several (PostgreSQL);
        returns the started link (stop it at shutdown), None for SQLite."""
        if not dialect.crosses_processes(engine):
            return None
        self._replicas = Replicas(engine, self)
        self._replicas.start()
        return self._replicas

    def listener_count(self, topic: str) -> int:
        """How many long-polls wait on `topic` (tests use it to know a poll is in flight)."""
        return len(self._listeners.get(topic, ()))

    def close(self) -> None:
        """Wake every waiter so that long-polls answer now and shutdown is not held up."""
        self._closed = True
        with self._lock:
            listeners = [listener for each in self._listeners.values() for listener in each]
        for listener in listeners:
            listener.wake()


class Replicas:
    """The wake-ups this process sends to and receives from the others on one PostgreSQL.

    A payload is "<origin> <topic>"; a process ignores its own (it woke its waits already).
    A wake-up sent while a replica's listening connection is down is lost to that replica: its
    long-polls then answer at their timeout, from the database, a little late but right."""

    def __init__(self, engine: Engine, notifier: Notifier) -> None:
        self._engine = engine
        self._notifier = notifier
        self.origin = secrets.token_hex(6)
        self._listener = dialect.Listener(
            engine.url.render_as_string(hide_password=False), CHANNEL, self._received,
            connected=self._connected)

    @property
    def listening(self):
        """Set while the LISTEN connection is up (a threading.Event)."""
        return self._listener.listening

    def start(self) -> None:
        self._listener.start()

    def stop(self) -> None:
        self._listener.stop()

    def send(self, topic: str) -> None:
        try:
            with self._engine.begin() as connection:
                dialect.notify(connection, CHANNEL, f"{self.origin} {topic}")
        except Exception as exc:  # the other replicas' polls answer at their timeout instead
            log.warning("could not tell the other replicas about %s: %s", topic, exc)

    def _received(self, payload: str) -> None:
        origin, _, topic = payload.partition(" ")
        if origin != self.origin and topic.startswith(CROSSING):
            self._notifier.from_replica(topic)

    def _connected(self) -> None:
        self._notifier.from_replica(None)
