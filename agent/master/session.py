"""The daemon's master-service side: credentials, the MQTT link, outbox, status, commands.

The daemon owns the state machine; this object performs its two master effects
(ObtainMasterCredentials, ConnectMaster), turns what the link reports into machine events, and
runs what lives on the link: the outbox pump, the status reporter and the remote commands.
Everything here runs on the daemon's asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from agent.gate_client import GateClient, GateUnreachableError
from agent.hardware import TerminalFacts
from agent.machine.state import (
    Event,
    MasterConnected,
    MasterCredentialsIssued,
    MasterLost,
    MasterRejected,
    Unpaired,
)
from agent.master.credentials import (
    CredentialsError,
    CredentialsStore,
    MasterCredentials,
    new_password,
)
from agent.master.log_archive import build_archive, collect
from agent.master.mqtt_link import LinkEvent, MqttLink
from agent.master.outbox import (
    UNACKED_ERROR_AFTER,
    AckError,
    Outbox,
    OutboxPump,
    parse_acks,
)
from agent.master.remote_commands import Command, CommandError, CommandRunner, log_request
from agent.master.status_report import HEARTBEAT, StatusReporter, build_status
from agent.restart import reboot_terminal
from agent.settings import ServerPin
from batm_common.remote_commands import RemoteCommand

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between checks for events the server has not acknowledged


class MasterSession:
    def __init__(
        self, state_dir: Path, facts: TerminalFacts, slots_dir: Path, *,
        dispatch: Callable[[Event], None],
        agent_status: Callable[[], dict],
        generation: Callable[[], int],
        gate: Callable[[], GateClient],
        reboot: Callable[[], None] = reboot_terminal,
        heartbeat: float = HEARTBEAT,
        sync_error_after: float = UNACKED_ERROR_AFTER,
    ):
        self.state_dir = Path(state_dir)
        self.facts = facts
        self.slots_dir = Path(slots_dir)
        self.credentials = CredentialsStore(state_dir)
        self.outbox = Outbox(state_dir)
        self.pump = OutboxPump(self.outbox, on_change=self.status_changed,
                               error_after=sync_error_after)
        self.link: MqttLink | None = None
        self.heartbeat = heartbeat
        self._dispatch = dispatch
        self._agent_status = agent_status
        self._generation = generation
        self._gate = gate
        self._reboot = reboot
        self.reporter = StatusReporter(self._build_status, self._publish_status)
        self.commands = CommandRunner({
            RemoteCommand.UNPAIR: self._cmd_unpair,
            RemoteCommand.RETRIEVE_LOGS: self._cmd_retrieve_logs,
            RemoteCommand.RESET_DB: self._cmd_reset_db,
            RemoteCommand.REBOOT: self._cmd_reboot,
        }, self._respond)
        self._tasks: set[asyncio.Task] = set()
        self._ticker: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ pairing effects

    def has_credentials(self) -> bool:
        return self.credentials.load(self.facts.serial) is not None

    async def obtain(self, generation: int, client: GateClient) -> Event:
        password = new_password()
        answer = await client.master_credentials(password)
        try:
            credentials = MasterCredentials.from_answer(answer, password, self.facts.serial)
        except CredentialsError as exc:
            raise GateUnreachableError(f"the server's credentials answer is unusable: {exc}"
                                       ) from exc
        self.credentials.save(credentials)
        log.info("MQTT credentials obtained (broker %s)", credentials.broker)
        return MasterCredentialsIssued(generation)

    def broker_moved(self, broker: object) -> None:
        """The check-in names the broker's address; keep the stored one current."""
        credentials = self.credentials.load(self.facts.serial)
        if credentials is None or not isinstance(broker, str) or broker == str(
                credentials.broker):
            return
        try:
            moved = MasterCredentials.from_answer(
                {**credentials.to_json(), "broker": broker}, credentials.password,
                self.facts.serial)
        except CredentialsError as exc:
            log.warning("ignoring the broker address from the check-in: %s", exc)
            return
        self.credentials.save(moved)
        log.info("the broker moved to %s", moved.broker)

    def connect(self, generation: int, pin: ServerPin | None) -> None:
        self.close_link()
        credentials = self.credentials.load(self.facts.serial)
        if credentials is None or pin is None:
            self._dispatch(MasterRejected(generation, "no MQTT credentials stored"))
            return
        loop = asyncio.get_running_loop()
        self.link = MqttLink(loop, generation, self.facts.serial, credentials, pin,
                             on_event=self._link_event, on_command=self._command,
                             on_acks=self.pump.acked, on_server_acks=self._server_acks,
                             on_problem=self.pump.problem)
        self.link.start()

    def close_older(self, generation: int) -> None:
        if self.link is not None and self.link.generation < generation:
            self.close_link()

    def close_link(self) -> None:
        if self.link is not None:
            link, self.link = self.link, None
            self._stop_ticker()
            self.pump.disconnected("link closed")
            link.close()

    def drop_credentials(self) -> None:
        self.close_link()
        self.credentials.delete()

    # ------------------------------------------------------------------ link events

    def _link_event(self, generation: int, event: LinkEvent) -> None:
        link = self.link
        current = link is not None and link.generation == generation
        if event.kind == "connected" and current:
            log.info("master service connected (%s)", link.credentials.broker)
            self.reporter.forget()
            self._dispatch(MasterConnected(generation))  # publishes the status (in_service)
            self.reporter.report()
            self.pump.connected_with(lambda body: link.publish("events", body))
            self._start_ticker()
            return
        if current:
            self._stop_ticker()
            self.pump.disconnected(event.reason)
            self.link = None
        if event.kind == "rejected":
            log.error("the broker refused this terminal's credentials: %s", event.reason)
            self._dispatch(MasterRejected(generation, event.reason))
        elif event.kind == "lost":
            log.warning("master service link lost: %s", event.reason)
            self._dispatch(MasterLost(generation, event.reason))

    # ------------------------------------------------------------------ server acknowledgements

    def _server_acks(self, payload: bytes) -> None:
        try:
            ids = parse_acks(payload)
        except AckError as exc:
            log.warning("ignoring an unusable acknowledgement from the server: %s", exc)
            return
        self.pump.server_acked(ids)

    def _start_ticker(self) -> None:
        self._stop_ticker()
        self._ticker = asyncio.get_running_loop().call_later(TICK, self._tick)

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def _tick(self) -> None:
        self._ticker = None
        if self.link is None or not self.link.connected:
            return
        self.pump.tick()
        self._start_ticker()

    # ------------------------------------------------------------------ status

    def _build_status(self) -> dict:
        status = self._agent_status()
        return build_status(
            serial=self.facts.serial, version=self.facts.version, slots_dir=self.slots_dir,
            state=status.get("state") or "", screen=status.get("screen"),
            last_sync=self.pump.last_sync, last_sync_error=self.pump.last_sync_error,
            uptime=float(status.get("uptime") or 0),
            vpn_handshake_age=(status.get("vpn") or {}).get("handshake_age"),
            outbox_pending=self.outbox.count(),
        )

    def _publish_status(self, body: bytes) -> int | None:
        link = self.link
        return link.publish("status", body, qos=1, retain=True) if link else None

    def status_changed(self) -> None:
        if self.link is not None and self.link.connected:
            self.reporter.report()

    async def heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            if self.link is not None and self.link.connected:
                self.reporter.report(force=True)

    def summary(self) -> dict:
        return {
            "connected": bool(self.link and self.link.connected),
            "broker": str(self.link.credentials.broker) if self.link else None,
            "outbox_pending": self.outbox.count(),
            "outbox_sent": self.outbox.count_sent(),
            "outbox_resent": self.pump.resent,
            "last_sync": self.pump.last_sync,
            "last_sync_error": self.pump.last_sync_error,
        }

    # ------------------------------------------------------------------ events

    def record_event(self, event_type: object, data: object = None) -> str:
        """EventError for bad input; the event is on disk when this returns."""
        event_id = self.outbox.record(event_type, data)
        self.pump.pump()
        return event_id

    # ------------------------------------------------------------------ commands

    def _command(self, payload: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self.commands.handle(payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _respond(self, answer: dict) -> None:
        link = self.link
        if link is None or link.publish("results", json.dumps(answer).encode()) is None:
            log.warning("could not send the result of command %s (link down)",
                        answer.get("command_id"))

    async def _cmd_unpair(self, _command: Command) -> dict:
        generation = self._generation()
        # After the result went out: the machine drops credentials and starts pairing afresh.
        asyncio.get_running_loop().call_soon(self._dispatch, Unpaired(generation))
        return {"unpaired": True}

    async def _cmd_reset_db(self, _command: Command) -> dict:
        pending = self.outbox.count()
        self.outbox.reset()
        self.pump.reset()
        log.warning("local database reset on the operator's request (%d pending event(s) "
                    "dropped)", pending)
        self.status_changed()
        # The fresh database's own facts, read back from it: the console shows them.
        return {"reset": True, "dropped_events": pending, "database": str(self.outbox.path),
                "created_at": self.outbox.created_at, "pending_events": self.outbox.count()}

    async def _cmd_reboot(self, _command: Command) -> dict:
        asyncio.get_running_loop().call_later(0.5, self._reboot)
        return {"rebooting": True}

    async def _cmd_retrieve_logs(self, command: Command) -> dict:
        request = log_request(command.args)
        source, lines = await asyncio.to_thread(collect, self.state_dir, request)
        try:
            archive, summary = await asyncio.to_thread(
                build_archive, self.facts.serial, source, lines, request)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        try:
            uploaded = await self._gate().upload_logs(command.id, archive)
        except GateUnreachableError as exc:
            raise CommandError(f"upload failed: {exc}") from exc
        return {**summary, "archive": uploaded.get("id")}

    # ------------------------------------------------------------------ shutdown

    def close(self) -> None:
        self._stop_ticker()
        self.close_link()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            self.outbox.close()
