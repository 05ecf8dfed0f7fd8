"""The terminals' MQTT accounts on this replica's broker, and revoking them wherever the unpair
happened.

An unpair, a delete or a key replacement must end the terminal's MQTT access at once. The
replica that handles it revokes on its own broker straight away; but with several brokers
(`--brokers`) or several replicas each running its own, the account may live on another
replica's broker. That replica learns of it two ways:
- at once: the session wake-up the change sends to every replica (LISTEN/NOTIFY, notify.py);
- for certain: a sweep of its accounts against the database whenever wake-ups may have been
  missed (its LISTEN connection came up, the first time included) and every SWEEP_EVERY
  seconds (the sending replica died between its commit and its NOTIFY).

What is kept is decided by the pairing an account was granted for, not by "paired now":
each account remembers the terminal's `paired_at` when it was granted (its generation; kept in
the plugin's file as the user's text name, so a restarted replica knows it too). An
account is revoked unless the terminal is paired *and* by the pairing it was granted for, so
a terminal unpaired and paired again before this replica heard of it loses the old
credentials too (a thief's copy of them does not outlive the re-pair). Accounts without a
recorded generation (a bulk enrollment's, written at a broker restart) are adopted with the one
the database shows when they are first swept; until then, a wake-up about them revokes them.

Grants and revocations take one lock, so a sweep never revokes an account that a grant has
just made for a newer pairing on the strength of an older read.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import queue
import random
import threading
import time

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from server.db.terminals import Terminal
from server.master.broker import DYNSEC_FILE
from server.master.dynsec import ADMIN_USER
from server.master.link import MasterLink
from server.notify import session_serial
from server.pairing.states import TerminalState

log = logging.getLogger(__name__)

SWEEP_EVERY = 60.0  # seconds: the longest a revocation whose wake-up was lost can wait
# Each wait for the next sweep is SWEEP_EVERY times a random factor in this range. Replicas
# start together, so fixed periods kept their sweeps together: at 50,000 terminals (three
# replicas of ≈ 16,700 accounts, ≈ 0.9 CPU-s a sweep each, estimated from per-process CPU
# sampled every 0.5 s) the three took both cores for 1.5 s
# every minute, and every status and revocation of that moment waited.
SWEEP_JITTER = (0.75, 1.25)
_SWEEP = None  # on the work queue: sweep everything (a serial: check that one)
_NONE = object()  # no generation known (the account is not ours, or gone)
NOTE_PREFIX = "paired_at "  # the user's text name: the pairing it was granted for


class BrokerAccounts:
    def __init__(self, sessions: sessionmaker, link: MasterLink,
                 sweep_every: float = SWEEP_EVERY) -> None:
        self._sessions = sessions
        self._link = link
        self._dynsec_file = link.broker.dir / DYNSEC_FILE
        self._snapshot_digest = b""
        self._sweep_every = sweep_every
        self._generations: dict[str, str | None] = {}  # serial → stamp(paired_at)
        self._lock = threading.Lock()
        self._work: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-accounts", daemon=True)
        self.sweeps = 0  # completed sweeps (tests wait on it)

    def start(self) -> None:
        self._work.put(_SWEEP)  # adopt what the broker holds; catch up on anything missed
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._work.put(_SWEEP)
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    # ------------------------------------------------------------------ what the server calls

    def grant(self, serial: str, password: str) -> None:
        """(Re)create the terminal's account for its current pairing (MasterLink.grant)."""
        with self._lock:
            generation = self._pairing(serial)[1]
            self._link.grant(serial, password, f"{NOTE_PREFIX}{generation}")
            self._generations[serial] = generation

    def revoke(self, serial: str) -> bool:
        """End the account now, on this broker (this replica's own unpair)."""
        with self._lock:
            return self._revoke(serial)

    def follow(self, topic: str | None) -> None:
        """Notifier.follow_replicas: another replica's session wake-up names a terminal whose
        access changed; None means wake-ups may have been missed."""
        if topic is None:
            self._work.put(_SWEEP)
        elif (serial := session_serial(topic)) is not None:
            self._work.put(serial)

    # ------------------------------------------------------------------ the work

    def _next_sweep(self) -> float:
        return time.monotonic() + self._sweep_every * random.uniform(*SWEEP_JITTER)

    def _run(self) -> None:
        # A deadline, not a timeout per wait: wake-ups coming more often than the period must
        # not put the sweep off for ever.
        next_sweep = self._next_sweep()
        while not self._stop.is_set():
            wait = next_sweep - time.monotonic()
            try:
                item = self._work.get(timeout=wait) if wait > 0 else _SWEEP
            except queue.Empty:
                item = _SWEEP
            if self._stop.is_set():
                return
            try:
                if item is _SWEEP:
                    next_sweep = self._next_sweep()  # before the sweep: a failed one counts too
                    self._sweep()
                    self.sweeps += 1
                else:
                    self._check(item)
            except Exception as exc:  # the database or the broker away: the next sweep retries
                log.warning("master: checking MQTT accounts failed (%s); retrying at the next "
                            "sweep", exc)

    def _check(self, serial: str) -> None:
        with self._lock:
            if not self._current(serial, self._pairing(serial)):
                self._revoke(serial)

    def _sweep(self) -> None:
        with self._sessions() as session:
            paired = {serial: stamp(paired_at) for serial, paired_at in session.execute(
                select(Terminal.serial, Terminal.paired_at)
                .where(Terminal.state == TerminalState.PAIRED)).all()}
        on_broker = self._accounts_on_broker()
        with self._lock:
            for serial in on_broker.keys() - self._generations.keys():
                recorded = on_broker[serial]
                if recorded is not None:
                    self._generations[serial] = recorded  # granted by an earlier run
                elif serial in paired:
                    self._generations[serial] = paired[serial]  # adopted
            suspects = {serial for serial, generation in self._generations.items()
                        if paired.get(serial, _NONE) != generation}
            suspects |= {serial for serial in on_broker if serial not in paired}
        for serial in sorted(suspects):
            self._check(serial)  # decided on a fresh read, under the lock

    # ------------------------------------------------------------------ under the lock

    def _current(self, serial: str, pairing: tuple[bool, str | None]) -> bool:
        paired, paired_at = pairing
        return paired and self._generations.get(serial, _NONE) == paired_at

    def _revoke(self, serial: str) -> bool:
        revoked = self._link.revoke(serial)
        if revoked:
            self._generations.pop(serial, None)
        return revoked

    def _pairing(self, serial: str) -> tuple[bool, str | None]:
        """(paired now, stamp of the pairing)."""
        with self._sessions() as session:
            row = session.execute(select(Terminal.state, Terminal.paired_at)
                                  .where(Terminal.serial == serial)).first()
        if row is None:
            return False, None
        return row.state == TerminalState.PAIRED, stamp(row.paired_at)

    def _accounts_on_broker(self) -> dict[str, str | None]:
        """The terminal accounts the broker's plugin holds and would let in (its file is
        rewritten after every change; a revoked account stays there disabled until the next
        broker start, link.revoke); empty when it cannot be read — the next sweep tries
        again. A file read whole is also the broker's snapshot (broker.DYNSEC_SNAPSHOT)."""
        try:
            contents = self._dynsec_file.read_bytes()
            data = json.loads(contents)  # a save caught half-way fails here: tried next time
            clients = data.get("clients", []) if isinstance(data, dict) else []
            digest = hashlib.sha256(contents).digest()
            if digest != self._snapshot_digest:
                self._link.broker.snapshot_dynsec(contents)
                self._snapshot_digest = digest
            return {c["username"]: recorded_generation(c) for c in clients
                    if isinstance(c, dict) and isinstance(c.get("username"), str)
                    and c["username"] != ADMIN_USER and c.get("disabled") is not True}
        except (OSError, ValueError) as exc:
            log.warning("master: cannot read the broker's accounts from %s (%s)",
                        self._dynsec_file, exc)
            return {}


def stamp(paired_at: datetime.datetime | None) -> str | None:
    """A pairing as the generation compared and recorded (the same on every engine)."""
    if paired_at is None:
        return None
    if paired_at.tzinfo is None:
        paired_at = paired_at.replace(tzinfo=datetime.UTC)
    return paired_at.astimezone(datetime.UTC).isoformat(timespec="microseconds")


def recorded_generation(client: dict) -> str | None:
    """The generation a grant wrote into the plugin's user (its text name), if any."""
    name = client.get("textname")
    if isinstance(name, str) and name.startswith(NOTE_PREFIX):
        return name.removeprefix(NOTE_PREFIX)
    return None
