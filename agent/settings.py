"""The agent's settings store: server address and pairing credentials, one JSON file.

Every save is atomic and is mirrored to `settings.json.bak`, so a file damaged from outside (a
technician's editor, a bad SD card sector) costs nothing: load() quarantines the damaged file
(batm_common.quarantine: moved aside and reported), and falls back to the mirror, which holds the
last good settings.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from batm_common.atomic import atomic_write
from batm_common.hostaddr import AddressError, ServerAddress, parse_server_address
from batm_common.quarantine import Replacement, quarantine

log = logging.getLogger(__name__)

FORMAT = 1
FILENAME = "settings.json"


class SettingsError(ValueError):
    """The settings file cannot be used; str() names the problem."""


@dataclass(frozen=True)
class ServerPin:
    """What a paired terminal trusts: the server's CA and the SHA-256 of its TLS leaf key."""

    ca_pem: str
    spki_sha256: str

    def to_json(self) -> dict:
        return {"ca_pem": self.ca_pem, "spki_sha256": self.spki_sha256}

    @classmethod
    def from_json(cls, data: object) -> ServerPin:
        if not isinstance(data, dict):
            raise SettingsError("'pin' must be an object")
        ca_pem, spki = data.get("ca_pem"), data.get("spki_sha256")
        if not isinstance(ca_pem, str) or "BEGIN CERTIFICATE" not in ca_pem:
            raise SettingsError("'pin.ca_pem' is not a PEM certificate")
        if not isinstance(spki, str) or len(spki) != 64:
            raise SettingsError("'pin.spki_sha256' is not a SHA-256 hex digest")
        try:
            int(spki, 16)
        except ValueError as exc:
            raise SettingsError("'pin.spki_sha256' is not hexadecimal") from exc
        return cls(ca_pem, spki.lower())


@dataclass(frozen=True)
class Settings:
    server: ServerAddress | None = None
    pin: ServerPin | None = None  # set only while paired
    paired_at: float | None = None
    extra: dict = field(default_factory=dict)  # keys written by newer versions, kept verbatim

    @property
    def paired(self) -> bool:
        return self.pin is not None

    def to_json(self) -> dict:
        return {
            **self.extra,
            "format": FORMAT,
            "server": str(self.server) if self.server else None,
            "pin": self.pin.to_json() if self.pin else None,
            "paired_at": self.paired_at,
        }

    @classmethod
    def from_json(cls, data: object) -> Settings:
        if not isinstance(data, dict):
            raise SettingsError("the settings file does not hold a JSON object")
        if data.get("format") != FORMAT:
            raise SettingsError(f"unsupported settings format {data.get('format')!r}")
        server_text = data.get("server")
        server = None
        if server_text is not None:
            try:
                server = parse_server_address(server_text)
            except AddressError as exc:
                raise SettingsError(f"'server': {exc}") from exc
        pin = ServerPin.from_json(data["pin"]) if data.get("pin") is not None else None
        paired_at = data.get("paired_at")
        if paired_at is not None and not isinstance(paired_at, int | float):
            raise SettingsError("'paired_at' must be a number")
        known = {"format", "server", "pin", "paired_at"}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(server=server, pin=pin, paired_at=paired_at, extra=extra)


class SettingsStore:
    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / FILENAME
        self.backup = self.path.with_name(FILENAME + ".bak")
        # Set by load() when stored settings existed but neither file could be used: the
        # screen says so instead of a plain "set the server" (issue 13, item 5).
        self.damaged: str | None = None

    def _read(self, path: Path) -> Settings:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise SettingsError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{path} is not valid JSON ({exc})") from exc
        return Settings.from_json(data)

    def load(self) -> Settings:
        """The stored settings; defaults when none were ever saved. Never raises for bad files."""
        if not self.path.exists():
            if self.backup.exists():
                return self._load_backup("the settings file is missing")
            return Settings()
        try:
            return self._read(self.path)
        except SettingsError as exc:
            return self._load_backup(str(exc), damaged=self.path)

    def _load_backup(self, why: str, damaged: Path | None = None) -> Settings:
        """The mirror's settings (saved back as the main file), or defaults when it is unusable.

        `damaged` is the main file when it exists but cannot be used: it is quarantined once
        the outcome is known, so its report says whether anything was lost.
        """
        try:
            settings = self._read(self.backup) if self.backup.exists() else None
        except SettingsError as exc:
            if damaged is not None:
                quarantine(damaged, why, Replacement.RECREATED)
            quarantine(self.backup, str(exc), Replacement.RECREATED)
            self.damaged = f"{why}; the backup is damaged too ({exc})"
            return Settings()
        if settings is None:
            log.error("settings: %s and there is no backup; starting unconfigured", why)
            if damaged is not None:
                quarantine(damaged, why, Replacement.RECREATED)
                self.damaged = f"{why}; there is no backup"
            return Settings()
        if damaged is not None:
            quarantine(damaged, why, Replacement.RESTORED)
        log.warning("settings: using the last good settings from %s", self.backup.name)
        self.save(settings)
        return settings

    def save(self, settings: Settings) -> None:
        data = (json.dumps(settings.to_json(), indent=2, sort_keys=True) + "\n").encode()
        atomic_write(self.path, data)
        atomic_write(self.backup, data)
