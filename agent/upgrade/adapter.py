"""The upgrade adapter: runs the firmware updater for the state machine's upgrade effects.

In-process, through firmware_updater's API (no subprocess: progress and cancellation need the
byte stream, and the agent already holds the gate's TLS key from the hello):

  at start      `resume_updater()` before the version is read: the directory backend's boot
                step, then whatever the journal says (try → trying, trying again without a
                commit → roll back, finish a commit or rollback). An install cut short while
                downloading is left as it is: it resumes from its last checkpoint when the gate
                offers the same bundle again (the gate's answer re-opens the upgrade slot).
  InstallUpgrade  stream the bundle from the gate (HTTP Range, pinned to the key of the hello)
                into the inactive slot; progress events go into the daemon's loop
  RestartIntoNewSlot  exit with RESTART_EXIT_CODE; the supervisor (systemd Restart=always, the
                simulator) starts the agent again, and the boot step switches to the new slot
  CommitSlot / RollBackSlot   the updater's commit / rollback (a rollback restarts too)

The terminal's trusted firmware keys: $BATM_FW_TRUSTED_KEYS, else SLOTS_DIR/trusted-keys/ (the
simulator makes it), else /etc/batm/firmware-keys/.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509

from agent.gate_client import spki_der, tls_context
from agent.machine.state import RetryDue
from agent.restart import RESTART_EXIT_CODE
from agent.upgrade import states as us
from agent.upgrade.offer import UpgradeOffer, UpgradeWait
from batm_common.atomic import atomic_write
from batm_common.hostaddr import ServerAddress
from batm_common.signing import HEADER_SERIAL
from firmware_updater.errors import FirmwareError, SourceError
from firmware_updater.install import Installer
from firmware_updater.journal import BEFORE_BOOT, COMMITTED, FAILED, ROLLED_BACK, TRYING, Journal
from firmware_updater.source import HttpStream
from firmware_updater.trust import load_trusted_keys

log = logging.getLogger("batm-agent.upgrade")

DEFAULT_KEYS_DIR = Path("/etc/batm/firmware-keys")
HISTORY = "upgrades.json"  # in SLOTS_DIR/updater/: one entry per committed upgrade
PROGRESS_STEP = 2  # percent between progress events


def trusted_keys_dir(slots_dir: Path) -> Path:
    env = os.environ.get("BATM_FW_TRUSTED_KEYS")
    if env:
        return Path(env)
    local = Path(slots_dir) / "trusted-keys"
    return local if local.is_dir() else DEFAULT_KEYS_DIR


@dataclass(frozen=True)
class StartReport:
    trying: bool  # a new slot runs on trial: commit it once the gate answered
    note: str | None  # the last upgrade's failure, to show and log
    message: str


def resume_updater(slots_dir: Path) -> StartReport:
    """`batm-firmware resume`, in-process, before the agent reads its version."""
    try:
        installer = Installer(slots_dir)
        record = installer.journal.load() or {}
        if record.get("state") in BEFORE_BOOT:
            installer.backend.on_boot()
            return StartReport(False, None, f"the install of version {record.get('version')} "
                                            "was interrupted; it resumes when the gate offers it")
        outcome = installer.resume(boot=True)
    except FirmwareError as exc:
        log.error("firmware updater: %s", exc)
        return StartReport(False, f"firmware updater: {exc}", str(exc))
    note = None
    if outcome.state in (ROLLED_BACK, FAILED):
        reason = (installer.journal.load() or {}).get("reason")
        version = (installer.journal.load() or {}).get("version")
        note = f"the upgrade to version {version} failed: {reason}" if version else None
    return StartReport(outcome.state == TRYING, note, outcome.message)


def upgrade_history(slots_dir: Path) -> list[dict]:
    try:
        data = json.loads((Path(slots_dir) / "updater" / HISTORY).read_text())
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def upgrade_event(generation: int, answer: UpgradeOffer | UpgradeWait) -> us.UpgradeEvent:
    """The machine's event for the gate's upgrade_required answer."""
    if isinstance(answer, UpgradeOffer):
        return us.UpgradeOffered(generation, answer)
    return us.UpgradeBusy(generation, answer.retry_after, answer.message)


class PinnedStream(HttpStream):
    """The bundle from the gate over HTTPS, accepted only from the TLS key seen in the hello.

    firmware_updater's HTTP stream does the Range resume and retries; this adds the key pin.
    """

    def __init__(self, url: str, offset: int, serial: str, spki_sha256: str,
                 on_position: Callable[[int, int | None], None], cancel: threading.Event):
        self.spki_sha256 = spki_sha256
        client = httpx.Client(verify=tls_context(None), headers={HEADER_SERIAL: serial},
                              timeout=httpx.Timeout(30.0, connect=5.0))
        super().__init__(url, offset, client=client, check_response=self._check_key,
                         on_position=on_position, cancel=cancel)

    def _check_key(self, response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
        der = ssl_object.getpeercert(True) if ssl_object is not None else None
        if not der:
            raise SourceError("the server presented no TLS certificate for the download")
        seen = hashlib.sha256(spki_der(x509.load_der_x509_certificate(der))).hexdigest()
        if seen != self.spki_sha256:
            raise SourceError("the download came from another TLS key than the gate's hello "
                              "(intercepted?)")


class UpgradeAdapter:
    def __init__(self, slots_dir: Path, serial: str, server: Callable[[], ServerAddress | None],
                 post: Callable[[object], None], request_exit: Callable[[int], None]):
        self.slots_dir = Path(slots_dir)
        self.serial = serial
        self._server = server
        self._put = post  # the daemon's event queue (loop thread only)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._request_exit = request_exit
        self._lock = asyncio.Lock()  # a commit finishes before the next install starts

    def _post(self, event: object) -> None:
        """Put an event into the daemon's loop, from the loop or from the install thread."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._put, event)

    def status(self) -> dict:
        try:
            record = Journal(self.slots_dir).load() or {}
        except FirmwareError:
            record = {}
        return {"install_state": record.get("state", "idle"),
                "install_version": record.get("version"), "reason": record.get("reason"),
                "upgrades": len(upgrade_history(self.slots_dir))}

    async def perform(self, effect: us.UpgradeEffect) -> object | None:
        gen = effect.generation
        self._loop = asyncio.get_running_loop()
        match effect:
            case us.WaitForUpgrade(seconds=seconds):
                await asyncio.sleep(seconds)
                return RetryDue(gen)
            case us.WatchTrial(seconds=seconds):
                # Not tied to a generation: retries must not cancel the trial's deadline.
                asyncio.get_running_loop().call_later(seconds, self._post, us.TrialExpired())
                return None
            case us.InstallUpgrade(offer=offer):
                async with self._lock:
                    return await self._install(gen, offer)
            case us.RestartIntoNewSlot():
                log.info("restarting into the new slot (exit %d)", RESTART_EXIT_CODE)
                self._request_exit(RESTART_EXIT_CODE)
            case us.CommitSlot():
                async with self._lock:
                    await asyncio.to_thread(self._commit)
            case us.RollBackSlot(reason=reason):
                async with self._lock:
                    await asyncio.to_thread(self._rollback, reason)
        return None

    async def _install(self, gen: int, offer) -> object:

        server = self._server()
        if server is None:
            return us.UpgradeFailed(gen, "no server set")
        url = f"https://{server.url_host}:{server.port}{offer.url}"
        cancel = threading.Event()
        last = [-PROGRESS_STEP]

        def on_position(position: int, size: int | None) -> None:
            percent = min(99, position * 100 // (size or offer.size or 1))
            if percent - last[0] >= PROGRESS_STEP:
                last[0] = percent
                self._post(us.UpgradeProgress(gen, percent))

        def opener(source: str, offset: int) -> PinnedStream:
            return PinnedStream(source, offset, self.serial, offer.spki_sha256, on_position,
                                cancel)

        log.info("installing version %s (step %s of %s) from %s", offer.version, offer.step,
                 offer.steps, url)
        self._post(us.UpgradeProgress(gen, 0))
        try:
            outcome = await asyncio.to_thread(self._install_blocking, url, opener)
        except asyncio.CancelledError:
            cancel.set()  # the download thread stops at its next read
            raise
        except FirmwareError as exc:
            log.error("upgrade to %s failed: %s", offer.version, exc)
            return us.UpgradeFailed(gen, str(exc))
        except Exception as exc:  # a bug must not leave the screen at "upgrading" forever
            log.exception("upgrade to %s failed", offer.version)
            return us.UpgradeFailed(gen, f"internal error: {type(exc).__name__}: {exc}")
        log.info("%s", outcome.message)
        return us.UpgradeInstalled(gen)

    def _install_blocking(self, url: str, opener):
        keys = load_trusted_keys(trusted_keys_dir(self.slots_dir))
        return Installer(self.slots_dir, trusted=keys, opener=opener).install(url)

    def _commit(self) -> None:
        try:
            installer = Installer(self.slots_dir)
            outcome = installer.commit()
        except FirmwareError as exc:
            log.error("commit failed: %s", exc)
            return
        log.info("the new version reached the gate: %s", outcome.message)
        if outcome.state == COMMITTED:
            record = installer.journal.load() or {}
            history = upgrade_history(self.slots_dir)
            history.append({"from": record.get("from_version"), "to": record.get("version"),
                            "committed": record.get("updated")})
            atomic_write(self.slots_dir / "updater" / HISTORY,
                         (json.dumps(history, indent=1) + "\n").encode(), mode=0o644)
        else:  # a hook vetoed the commit: the updater fell back to the previous slot
            self._request_exit(RESTART_EXIT_CODE)

    def _rollback(self, reason: str) -> None:
        log.error("falling back to the previous slot: %s", reason)
        try:
            Installer(self.slots_dir).rollback(reason)
        except FirmwareError as exc:
            log.error("rollback failed: %s", exc)
            return
        self._request_exit(RESTART_EXIT_CODE)
