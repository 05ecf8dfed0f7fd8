"""The agent daemon: the imperative shell around the pure state machine (agent/machine/).

One asyncio loop. Adapters (gate client, timers, control socket) turn the outside world into
events; `dispatch` runs the transition, persists what must survive a power cut *before* acting,
publishes the screen, then starts the network effects as tasks tagged with their generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from agent.admin.service import AdminService
from agent.backoff import retry_delay
from agent.control.screen_bus import ScreenBus
from agent.control.server import ControlServer
from agent.gate_client import (
    CertificateMismatchError,
    GateClient,
    GateUnreachableError,
    NotPairedError,
    RequestGoneError,
    UnknownTerminalError,
    UpgradeRequiredError,
)
from agent.hardware import HardwareError, TerminalFacts, read_facts
from agent.identity import Identity, load_or_create
from agent.machine import state as machine
from agent.machine.dispatch import transition
from agent.master.log_archive import file_handler
from agent.master.outbox import UNACKED_ERROR_AFTER
from agent.master.session import MasterSession
from agent.restart import reboot_terminal
from agent.screens import screen_model
from agent.settings import ServerPin, Settings, SettingsStore
from agent.upgrade.adapter import StartReport, UpgradeAdapter, resume_updater, upgrade_event
from agent.upgrade.states import UPGRADE_EFFECTS, UpgradeStartup
from agent.vpn import options as vpn_options
from agent.vpn.adapter import VpnAdapter
from agent.vpn.config import VpnConfigError
from agent.vpn.states import VPN_EFFECTS
from batm_common.atomic import ensure_private_dir
from batm_common.hostaddr import parse_server_address
from batm_common.journal_logging import stderr_handler
from batm_common.quarantine import STATE_FILE_EVENT, take_reports
from batm_common.screen_ids import ScreenId
from batm_common.sd_notify import sd_notify
from batm_common.sd_notify import status as sd_status
from batm_common.watchdog import WatchdogPinger

log = logging.getLogger("batm-agent")


@dataclass(frozen=True)
class DaemonConfig:
    state_dir: Path
    hardware_dir: Path | None
    slots_dir: Path
    retry_max: float = 30.0
    heartbeat: float = 30.0  # status heartbeat on the master service, seconds
    sync_error_after: float = UNACKED_ERROR_AFTER  # unacknowledged this long: a sync error
    vpn_interface: str = vpn_options.DEFAULT_INTERFACE  # scenario A (agent/vpn)
    vpn_mtu: int = vpn_options.DEFAULT_MTU
    vpn_health_window: float = vpn_options.HEALTH_WINDOW
    vpn_check_interval: float = vpn_options.CHECK_INTERVAL


class Daemon:
    def __init__(self, config: DaemonConfig, facts: TerminalFacts):
        self.config = config
        self.facts = facts
        self.started_at = time.monotonic()
        ensure_private_dir(config.state_dir, mode=0o750)  # group: the display reads the socket
        self.store = SettingsStore(config.state_dir)
        self.settings: Settings = self.store.load()
        self.identity: Identity = load_or_create(config.state_dir)
        self.state = machine.initial_state(uses_master=True)
        self.bus = ScreenBus()
        self._events: asyncio.Queue[machine.Event] = asyncio.Queue()
        self._tasks: dict[asyncio.Task, int] = {}
        self._client: GateClient | None = None
        self._client_key: tuple | None = None
        self.exit_code = 0  # RESTART_EXIT_CODE (agent/restart.py): start me again
        self._stop: asyncio.Event | None = None
        self.upgrade_start: StartReport | None = None  # what resume_updater() found at start
        self.upgrades = UpgradeAdapter(config.slots_dir, facts.serial, lambda: self.state.server,
                                       self._events.put_nowait, self.request_exit)
        self.vpn = VpnAdapter(
            config.state_dir, interface=config.vpn_interface, mtu=config.vpn_mtu,
            health_window=config.vpn_health_window,
            check_interval=config.vpn_check_interval, dispatch=self.dispatch,
            generation=lambda: self.state.generation)
        self.master = MasterSession(
            config.state_dir, facts, config.slots_dir, dispatch=self.dispatch,
            agent_status=self.status, generation=lambda: self.state.generation,
            gate=lambda: self._gate(self.settings.pin), reboot=reboot_terminal,
            heartbeat=config.heartbeat, sync_error_after=config.sync_error_after,
        )
        self.admin = AdminService(config.state_dir, status=self.status, set_server=self.set_server,
                                  reboot=reboot_terminal, slots_dir=config.slots_dir,
                                  vpn=self.vpn.info)
        self._report_quarantines()  # what the loaders above (and the updater) moved aside

    # ------------------------------------------------------------------ control backend

    def status(self) -> dict:
        return {
            "serial": self.facts.serial,
            "version": self.facts.version,
            "state": self.state.name,
            "screen": self.bus.current.get("screen") if self.bus.current else None,
            "server": str(self.state.server) if self.state.server else None,
            "paired": self.state.paired,
            "server_key_fingerprint": (
                self.settings.pin.spki_sha256[:16] if self.settings.pin else None
            ),
            "identity_fingerprint": self.identity.fingerprint,
            "pid": os.getpid(),
            "uptime": round(time.monotonic() - self.started_at, 1),
            "vpn": self.vpn.info() if hasattr(self, "vpn") else None,
            "firmware": self.upgrades.status(),
            "master": self.master.summary() if hasattr(self, "master") else None,
        }

    def record_event(self, event_type: object, data: object = None) -> str:
        """The control socket's record_event: stored durably, then published (outbox)."""
        return self.master.record_event(event_type, data)

    def set_server(self, address: str) -> str:
        server = parse_server_address(address)  # AddressError says what is wrong
        self.dispatch(machine.ServerSet(server))
        return str(server)

    # ------------------------------------------------------------------ the loop

    def _report_quarantines(self) -> None:
        """Each damaged state file moved aside becomes one event for the server (outbox)."""
        for record in take_reports():
            self.master.record_event(STATE_FILE_EVENT, record.to_json())

    def dispatch(self, event: machine.Event) -> None:
        # Files damaged since (the VPN key, the install journal) are loaded while the agent
        # works; every event is a moment to pass their reports on.
        self._report_quarantines()
        old = self.state
        new, effects = transition(old, event)
        # Persist first: a power cut after this line must not lose what the screen will claim.
        for effect in effects:
            if isinstance(effect, machine.PERSISTENT_EFFECTS):
                self._persist(effect)
        self.state = new
        if new.generation != old.generation:
            self._cancel_older_than(new.generation)
        if type(new.phase) is not type(old.phase) or new.phase != old.phase:
            log.info("%s -> %s (%s)", old.name, new.name, type(event).__name__)
        screen = self._screen(new)
        if screen.get("screen") != (self.bus.current or {}).get("screen"):
            sd_status(f"screen {screen.get('screen')} ({new.name})")  # systemctl status shows it
        self.bus.publish(screen)
        self.master.status_changed()
        for effect in effects:
            if not isinstance(effect, machine.PERSISTENT_EFFECTS):
                task = asyncio.get_running_loop().create_task(self._perform(effect))
                self._tasks[task] = effect.generation
                task.add_done_callback(self._tasks.pop)

    def _screen(self, state: machine.AgentState) -> dict:
        model = screen_model(state, self.facts)
        if model["screen"] == ScreenId.SET_SERVER and self.store.damaged:
            # Not just "set the server": the technician must know the settings were lost.
            model.update(title="Settings damaged",
                         text="The stored settings were damaged and could not be restored. "
                              "Set the terminal server's host/IP again in advanced "
                              "administration.",
                         detail=self.store.damaged)
        return model

    def _persist(self, effect: machine.Effect) -> None:
        match effect:
            case machine.SaveServer(server=server):
                self.settings = Settings(server=server, pin=self.settings.pin,
                                         paired_at=self.settings.paired_at,
                                         extra=self.settings.extra)
            case machine.SavePairing(pin=pin):
                self.settings = Settings(server=self.settings.server, pin=pin,
                                         paired_at=time.time(), extra=self.settings.extra)
            case machine.DropMasterCredentials():
                self.master.drop_credentials()  # the pairing stays (agent/machine/pairing.py)
            case machine.DropCredentials():
                self.settings = Settings(server=self.settings.server, extra=self.settings.extra)
                self.master.drop_credentials()
                self.vpn.forget_key()  # a revoked WireGuard key is never offered again
        self.store.save(self.settings)

    def _cancel_older_than(self, generation: int) -> None:
        for task, gen in list(self._tasks.items()):
            if gen < generation:
                task.cancel()
        self.master.close_older(generation)

    def _gate(self, pin: ServerPin | None, fresh: bool = False) -> GateClient:
        """The client for the current server and trust anchor (kept so connections are reused)."""
        key = (self.state.server, pin)
        if fresh or self._client is None or self._client_key != key:
            if self._client is not None:
                asyncio.get_running_loop().create_task(self._client.aclose())
            self._client = GateClient(self.state.server, self.identity, self.facts, pin)
            self._client_key = key
        return self._client

    def _adopt(self, client: GateClient, pin: ServerPin) -> None:
        """After a hello the TOFU client is bound to the server's key: reuse it for that pin."""
        if self._client is client:
            self._client_key = (self.state.server, pin)

    async def _perform(self, effect: machine.Effect) -> None:
        gen = effect.generation
        try:
            event = await self._network_effect(effect)
        except UnknownTerminalError:
            event = machine.TerminalUnknown(gen)
        except NotPairedError:
            event = machine.Unpaired(gen)
        except RequestGoneError:
            event = machine.PairingRequestGone(gen)
        except CertificateMismatchError as exc:
            event = machine.ServerKeyMismatch(gen, str(exc))
        except UpgradeRequiredError as exc:
            event = upgrade_event(gen, exc.answer)
        except GateUnreachableError as exc:
            event = machine.GateUnreachable(gen, str(exc))
        if event is not None:
            await self._events.put(event)

    def request_exit(self, code: int) -> None:
        self.exit_code = code
        if self._stop is not None:
            self._stop.set()

    async def _network_effect(self, effect: machine.Effect) -> machine.Event | None:
        gen = effect.generation
        if isinstance(effect, UPGRADE_EFFECTS):
            return await self.upgrades.perform(effect)
        if isinstance(effect, VPN_EFFECTS):
            return await self.vpn.perform(effect)
        match effect:
            case machine.StartPairing():
                client = self._gate(pin=None, fresh=True)
                offer = await client.start_pairing()
                self._adopt(client, offer.pin)
                return machine.PairingOffered(gen, offer.request_id, offer.code, offer.pin)
            case machine.PollApproval(request_id=request_id, pin=pin):
                approved = await self._gate(pin).poll_approval(request_id)
                return machine.Approved(gen) if approved else machine.ApprovalPending(gen)
            case machine.CheckIn():
                answer = await self._gate(self.settings.pin).check_in(
                    {"vpn_public_key": self.vpn.public_key()})
                self.master.broker_moved(answer.get("broker"))
                try:
                    offer = self.vpn.take_offer(answer)
                except VpnConfigError as exc:
                    raise GateUnreachableError(f"the server's VPN answer is unusable: {exc}"
                                               ) from exc
                return machine.CheckedIn(gen, vpn=offer.required)
            case machine.WatchSession():
                still_paired = await self._gate(self.settings.pin).watch_session()
                return machine.SessionAlive(gen) if still_paired else machine.Unpaired(gen)
            case machine.ObtainMasterCredentials():
                return await self.master.obtain(gen, self._gate(self.settings.pin))
            case machine.ConnectMaster():
                self.master.connect(gen, self.settings.pin)
                return None
            case machine.RetryLater(attempt=attempt):
                await asyncio.sleep(retry_delay(attempt, self.config.retry_max))
                return machine.RetryDue(gen)
        return None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        control = ControlServer(self.config.state_dir / "control.sock", self)
        await control.start()
        if self.upgrade_start is not None:
            self.dispatch(UpgradeStartup(self.upgrade_start.trying, self.upgrade_start.note))
        self.dispatch(machine.Started(self.settings.server, self.settings.paired,
                                 self.master.has_credentials()))
        heartbeat = loop.create_task(self.master.heartbeat_loop())
        sd_notify("READY=1")
        # Pings come from this loop: a blocked loop stops them and systemd restarts the agent.
        watchdog = WatchdogPinger.from_environment()
        if watchdog is not None:
            watchdog.start()
        log.info(
            "terminal %s version %s ready (identity %s)",
            self.facts.serial, self.facts.version, self.identity.fingerprint,
        )
        stopper = loop.create_task(stop.wait())
        try:
            while not stop.is_set():
                getter = loop.create_task(self._events.get())
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    self.dispatch(getter.result())
                else:
                    getter.cancel()
        finally:
            sd_notify("STOPPING=1")
            if watchdog is not None:
                await watchdog.stop()
            for task in list(self._tasks):
                task.cancel()
            heartbeat.cancel()
            self.master.close()
            self.vpn.close()
            await control.close()
            if self._client is not None:
                with contextlib.suppress(Exception):
                    await self._client.aclose()
            log.info("stopped")


def run(args) -> int:
    """Entry point for `batm-agent run` (args from agent.cli)."""
    logging.basicConfig(
        level=getattr(logging, str(getattr(args, "log_level", "INFO")).upper(), logging.INFO),
        handlers=[stderr_handler()],  # "<N>" priorities under journald, timestamps elsewhere
    )
    logging.getLogger("paho").setLevel(logging.WARNING)
    config = DaemonConfig(
        state_dir=Path(args.state_dir),
        hardware_dir=Path(args.hardware_dir) if args.hardware_dir else None,
        slots_dir=Path(args.slots_dir),
        retry_max=float(args.retry_max),
        heartbeat=float(getattr(args, "heartbeat", None) or 30.0),
        sync_error_after=float(getattr(args, "sync_error_after", None) or UNACKED_ERROR_AFTER),
        **vpn_options.daemon_options(args),
    )
    upgrade_start = resume_updater(config.slots_dir)  # before the version is read
    log.info("firmware: %s", upgrade_start.message)
    try:
        facts = read_facts(config.hardware_dir, config.slots_dir)
    except HardwareError as exc:
        log.error("cannot start: %s", exc)
        return 1
    try:
        # Always a file to collect logs from (retrieve_logs), besides stderr/journald.
        logging.getLogger().addHandler(file_handler(config.state_dir))
        daemon = Daemon(config, facts)
    except OSError as exc:
        log.error("cannot start: %s: %s", exc.filename or config.state_dir, exc.strerror)
        return 1
    daemon.upgrade_start = upgrade_start
    asyncio.run(daemon.run())
    return daemon.exit_code
