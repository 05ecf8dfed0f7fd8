"""The installer: the journal's states (journal.py) driven forward, one persisted step at a time.

Entry points, each safe to run again after a power cut at any moment:
  install(source)  verify the bundle, stream it into the inactive slot, arm it, try-boot it;
                   resumes an interrupted install of the same bundle from its last checkpoint
  resume(boot)     at every start (before the agent): let the backend do its boot step, then
                   continue whatever the journal says (download, try, commit, rollback)
  commit()         the new version has reached the gate: make the tried slot the default
  rollback()       give up the try (or cancel an install) and run the previous slot

Order of checks for a new bundle, all before anything is written: header -> signature by a
trusted key -> manifest fields -> hardware -> no downgrade -> installable from the running
version -> bundle size (truncated / oversize) -> slot capacity. Any refusal leaves the running
slot, the boot configuration and the journal of another install untouched.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmware_updater.backends import load_backend
from firmware_updater.bundle import RESERVED_NAMES, Header, read_header
from firmware_updater.errors import (
    BusyError,
    FirmwareError,
    PayloadError,
    PolicyError,
    SlotError,
    SourceError,
    TrustError,
)
from firmware_updater.hooks import HookError, run_hook
from firmware_updater.journal import (
    ARMED,
    BEFORE_BOOT,
    COMMITTED,
    COMMITTING,
    DAMAGED_FIELD,
    DOWNLOADING,
    FAILED,
    REBOOTING,
    ROLLED_BACK,
    ROLLING_BACK,
    TERMINAL,
    TRYING,
    WRITTEN,
    Journal,
    now,
)
from firmware_updater.manifest import Manifest, check_installable
from firmware_updater.payload import PayloadStreamer
from firmware_updater.slots import load_config
from firmware_updater.source import Stream, open_source
from firmware_updater.tarstream import TarReader
from firmware_updater.trust import verify_manifest

MAX_BOOT_ATTEMPTS = 2  # one try, plus one more if power was lost before the try boot began
CHECKPOINT_ENV = "BATM_FW_CHECKPOINT_BYTES"
DEFAULT_CHECKPOINT_BYTES = 32 << 20
TAR_SLACK = 20 << 10  # tar headers and end-of-archive padding around the slot's content


@dataclass(frozen=True)
class Outcome:
    state: str
    message: str


class Installer:
    def __init__(self, slots_dir: Path | str, trusted: dict | None = None,
                 hardware: str | None = None,
                 opener: Callable[[str, int], Stream] = open_source) -> None:
        self.slots_dir = Path(slots_dir)
        config = load_config(self.slots_dir)
        self.backend = load_backend(self.slots_dir, config)
        self.hooks_dir = Path(config["hooks_dir"]) if config.get("hooks_dir") else None
        self.journal = Journal(self.slots_dir)
        self.trusted, self.hardware = trusted, hardware
        # How bundle bytes are fetched (the agent passes a stream pinned to the gate's TLS key).
        self.open = opener
        self.record: dict = {}
        self.checkpoint_bytes = int(os.environ.get(CHECKPOINT_ENV) or DEFAULT_CHECKPOINT_BYTES)

    # -- facts -------------------------------------------------------------------------------
    def running(self) -> tuple[str, int, str]:
        slot = self.backend.active()
        manifest = self.backend.slot_manifest(slot)
        if manifest is None:
            raise SlotError(f"the running slot {slot} has no readable manifest.json")
        hardware = self.hardware or manifest.get("hardware")
        if not isinstance(hardware, str):
            raise SlotError("cannot tell this terminal's hardware; pass --hardware")
        return slot, manifest["version"], hardware

    def _describe(self) -> str:
        r = self.record
        return f"version {r.get('version')} in slot {r.get('target')}"

    # -- persisted steps ---------------------------------------------------------------------
    def _enter(self, state: str, **fields: object) -> None:
        """Persist `state`, then run its hook; the caller acts only after this returns."""
        self.record = self.journal.transition(self.record, state, **fields)
        run_hook(self.hooks_dir, state, {
            "BATM_FW_STATE": state, "BATM_FW_VERSION": str(self.record.get("version", "")),
            "BATM_FW_SLOT": str(self.record.get("target", "")),
            "BATM_FW_SLOTS_DIR": str(self.slots_dir)})

    def _fail(self, reason: str) -> FirmwareError:
        """Give up before the new slot ever booted: the running slot was never touched."""
        self.record = self.journal.transition(self.record, FAILED, reason=reason)
        if self.record.get("target"):
            self.backend.discard(self.record["target"])
        return FirmwareError(reason)

    def _refused(self, exc: FirmwareError, source: str) -> FirmwareError:
        """Record a refusal, unless that would hide an install still in progress."""
        current = self.journal.load()
        if current is None or current["state"] in TERMINAL:
            self.record = {"source": source}
            self.journal.transition(self.record, FAILED, reason=str(exc), version=None,
                                    target=None)
        return exc

    # -- install -----------------------------------------------------------------------------
    def install(self, source: str) -> Outcome:
        self.record = self.journal.load() or {}
        state = self.record.get("state")
        if state and state not in TERMINAL and state not in BEFORE_BOOT:
            outcome = self._settle()
            if self.record["state"] not in TERMINAL:
                if self.record.get("source") == source:
                    return outcome
                raise BusyError(f"{self._describe()} is {self.record['state']}: commit or roll "
                                "back before installing another bundle")
        try:
            stream = self.open(source, 0)
        except SourceError as exc:
            raise self._refused(exc, source) from exc
        try:
            header, manifest, kid = self._check(stream, source)
            return self._install(source, stream, header, manifest, kid)
        finally:
            stream.close()

    def _check(self, stream: Stream, source: str) -> tuple[Header, Manifest, str]:
        try:
            header = read_header(stream.read)
            if self.trusted is None:
                raise TrustError("no trusted keys given (--trusted-keys DIR)")
            kid = verify_manifest(header.manifest_bytes, list(header.signatures), self.trusted)
            manifest = Manifest.from_bytes(header.manifest_bytes)
            _slot, version, hardware = self.running()
            check_installable(manifest, version, hardware)
            expected = header.size + manifest.payload_size
            if stream.size is not None and stream.size < expected:
                raise PayloadError(f"truncated: the bundle is {stream.size} bytes, its manifest "
                                   f"promises {expected}")
            if stream.size is not None and stream.size > expected:
                raise PayloadError(f"oversize: the bundle has {stream.size - expected} bytes "
                                   "after the declared payload")
            capacity = self.backend.capacity(self.backend.inactive())
            if capacity is not None and manifest.payload_size > capacity + TAR_SLACK:
                raise PolicyError(f"oversize: the payload ({manifest.payload_size} bytes) does "
                                  f"not fit slot {self.backend.inactive()} ({capacity} bytes)")
        except FirmwareError as exc:
            raise self._refused(exc, source) from exc
        return header, manifest, kid

    def _install(self, source: str, stream: Stream, header: Header, manifest: Manifest,
                 kid: str) -> Outcome:
        slot, version, hardware = self.running()
        target = self.backend.inactive()
        same = (self.record.get("state") in BEFORE_BOOT
                and self.record.get("bundle_digest") == header.digest
                and self.record.get("target") == target)
        if not same:
            self.record = {}
            try:
                self._start(source, header, manifest, kid, slot, version, hardware, target)
            except (SlotError, HookError) as exc:
                raise self._fail(str(exc)) from exc
        else:
            if self.record.get("source") != source:
                self.record = self.journal.checkpoint(self.record, source=source)
            if self.record["state"] == DOWNLOADING and not self.record["offset"]:
                self.backend.prepare(target)  # no checkpoint yet: redo the step from its start
        return self._advance(source, stream, header, manifest)

    def _start(self, source: str, header: Header, manifest: Manifest, kid: str, slot: str,
               version: int, hardware: str, target: str) -> None:
        self._enter(DOWNLOADING, source=source, bundle_digest=header.digest,
                    version=manifest.version, from_version=version, hardware=hardware,
                    target=target, previous=slot, key_id=kid, offset=0, tar=None,
                    writer=None, payload_size=manifest.payload_size, boot_attempts=0,
                    reason=None, started=now(), slot_manifest={
                        "version": manifest.version, "hardware": hardware,
                        "compatible": list(manifest.hardware),
                        "payload_sha256": manifest.payload_sha256,
                        "signed_by": kid, "created": manifest.created})
        self.backend.prepare(target)

    def _advance(self, source: str, stream: Stream, header: Header,
                 manifest: Manifest) -> Outcome:
        target = self.record["target"]
        try:
            if self.record["state"] == DOWNLOADING:
                self._download(source, stream, header, manifest)
                self._enter(WRITTEN)
            if self.record["state"] == WRITTEN:
                self.backend.write_slot_manifest(target, self.record["slot_manifest"]
                                                 | {"installed": now()})
                self._enter(ARMED)
            self.backend.mark_tried(target)
            return self._reboot()
        except SourceError as exc:
            raise SourceError(f"{exc}; the install stopped at payload byte "
                              f"{self.record.get('offset', 0)} - run it again to resume") from exc
        except (PayloadError, SlotError, HookError) as exc:
            raise self._fail(str(exc)) from exc
        except OSError as exc:
            raise self._fail(f"cannot write slot {target} ({exc.strerror or exc})") from exc

    def _download(self, source: str, stream: Stream, header: Header, manifest: Manifest) -> None:
        offset = self.record["offset"]
        if offset:
            stream.close()
            stream = self.open(source, header.size + offset)
        writer = self.backend.open_writer(self.record["target"], self.record["writer"])
        reader = TarReader(writer, self.record["tar"], reserved=RESERVED_NAMES)

        def checkpoint(position: int) -> None:
            token = writer.sync()  # durable first, then say so
            self.record = self.journal.checkpoint(self.record, offset=position,
                                                  tar=reader.state(), writer=token)

        try:
            PayloadStreamer(manifest, reader, writer, checkpoint,
                            self.checkpoint_bytes).run(stream, offset)
            writer.sync()
        finally:
            writer.close()
            stream.close()

    def _reboot(self) -> Outcome:
        attempt = self.record.get("boot_attempts", 0) + 1
        self._enter(REBOOTING, boot_attempts=attempt)
        self.backend.boot_tried()
        return Outcome(REBOOTING, f"{self._describe()} is installed and verified; restarting "
                                  f"into it to try it once (attempt {attempt}); commit it once "
                                  "it has reached the gate")

    # -- after the slot is armed -------------------------------------------------------------
    def _trying(self) -> bool:
        return self.backend.is_trying() and self.backend.active() == self.record["target"]

    def _settle(self) -> Outcome:
        state = self.record["state"]
        version = self.record.get("version")
        if state == REBOOTING:
            if self._trying():
                try:
                    self._enter(TRYING)
                except HookError as exc:
                    return self._rollback(str(exc))
                return Outcome(TRYING, f"trying {self._describe()}; commit it once it has "
                                       "reached the gate")
            if self.backend.try_pending():
                return Outcome(REBOOTING, f"{self._describe()} is armed; restart to try it")
            if self.record.get("boot_attempts", 0) < MAX_BOOT_ATTEMPTS:
                self.backend.mark_tried(self.record["target"])
                return self._reboot()
            return self._rollback(f"version {version} never started in slot "
                                  f"{self.record['target']} "
                                  f"({self.record['boot_attempts']} attempts)")
        if state == TRYING:
            if self._trying():
                return Outcome(TRYING, f"trying {self._describe()}; commit it once it has "
                                       "reached the gate")
            return self._rollback(f"version {version} started but was not committed before "
                                  "the terminal restarted")
        if state == COMMITTING:
            if self.backend.active() == self.record["target"]:
                self.backend.commit(self.record["target"])
                self.record = self.journal.transition(self.record, COMMITTED)
                return Outcome(COMMITTED, f"committed {self._describe()}")
            return self._rollback(f"the commit of version {version} was cut short by a restart")
        if state == ROLLING_BACK:
            self.backend.rollback()
            self.record = self.journal.transition(self.record, ROLLED_BACK)
            return self._rolled_back_outcome()
        return Outcome(state, f"{self._describe()}: {state}")

    def _rollback(self, reason: str) -> Outcome:
        # a hook cannot veto falling back to the slot that is known to work
        with contextlib.suppress(HookError):
            self._enter(ROLLING_BACK, reason=reason)
        self.backend.rollback()
        self.record = self.journal.transition(self.record, ROLLED_BACK)
        return self._rolled_back_outcome()

    def _rolled_back_outcome(self) -> Outcome:
        return Outcome(ROLLED_BACK, f"rolled back: {self.record.get('reason')}; slot "
                                    f"{self.record.get('previous')} (version "
                                    f"{self.record.get('from_version')}) is the default again")

    # -- entry points --------------------------------------------------------------------------
    def resume(self, boot: bool = True) -> Outcome:
        if boot:
            self.backend.on_boot()
        self.record = self.journal.load() or {}
        state = self.record.get("state")
        if self.record.get(DAMAGED_FIELD) and state == FAILED and self.backend.is_trying():
            # The journal that knew why this slot is being tried is gone: the try cannot be
            # judged, so the slot known to work runs again (the bundle will be offered again).
            self.record |= {"target": self.backend.active(),
                            "previous": self.backend.committed()}
            return self._rollback("the install journal was damaged during a try boot")
        if not state or state in TERMINAL:
            slot, version, _hw = self.running()
            return Outcome(state or "idle", f"running version {version} in slot {slot}; "
                                            "nothing to resume")
        if state in BEFORE_BOOT:
            if self.trusted is None:
                raise TrustError(f"an install of {self._describe()} was interrupted; "
                                 "pass --trusted-keys to continue it")
            return self.install(self.record["source"])
        return self._settle()

    def commit(self) -> Outcome:
        self.record = self.journal.load() or {}
        state = self.record.get("state")
        if state == COMMITTED:
            return Outcome(COMMITTED, f"{self._describe()} is already committed")
        if state in (REBOOTING, TRYING) and self._trying():
            try:
                if state == REBOOTING:
                    self._enter(TRYING)
                self._enter(COMMITTING)
            except HookError as exc:
                return self._rollback(str(exc))
            return self._settle()
        if state == REBOOTING:
            raise FirmwareError(f"nothing to commit: {self._describe()} has not been started "
                                "by a try boot yet")
        if state in (TRYING, COMMITTING, ROLLING_BACK):
            return self._settle()
        raise FirmwareError(f"nothing to commit: no update is being tried (journal: "
                            f"{state or 'empty'})")

    def rollback(self, reason: str = "rolled back on request") -> Outcome:
        self.record = self.journal.load() or {}
        state = self.record.get("state")
        if not state or state in TERMINAL:
            raise FirmwareError("nothing to roll back: no update is in progress")
        if state in BEFORE_BOOT:
            reason = f"the install of {self._describe()} was cancelled"
            self._fail(reason)
            return Outcome(FAILED, reason + f"; slot {self.record['target']} is left incomplete")
        return self._rollback(reason)

    def status(self) -> dict:
        status = self.backend.status()
        record = self.journal.load()
        if record:
            status["install"] = {key: record.get(key) for key in (
                "state", "version", "from_version", "target", "previous", "source", "reason",
                "offset", "payload_size", "boot_attempts", "updated")}
        else:
            status["install"] = None
        return status
