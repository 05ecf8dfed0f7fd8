"""A console with the master service and the firmware catalog behind it, in-process, for the
status monitor's tests: statuses and command results go in through the server's real Ingest
(what its MQTT client hands over), archives through the real Archives store, bundles through the
real Catalog with a trusted signing key. Only the broker is absent: the commands the console
sends are recorded where the MQTT link would publish them (the rig test sends them for real:
hil_tests/test_console_monitor.py)."""

from __future__ import annotations

import datetime
import json

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy import update
from test_console_api import PASSWORD, USERS, Clock, ConsoleCalls

from batm_common.clock import iso_ms, utcnow
from firmware_updater.testing import make_bundle, make_key, make_tree
from server.console.service import console_service
from server.db.engine import open_database
from server.db.terminals import Terminal
from server.firmware.catalog import Catalog, copy_keys
from server.firmware.gate import UpgradeGate
from server.http.console.app import create_console_app
from server.master.archives import Archives
from server.master.commands import Commands
from server.master.ingest import Incoming, Ingest
from server.master.link import MasterUnavailable
from server.master.monitoring import Monitoring
from server.master.service import MasterService
from server.pairing.registry import Registry
from server.pairing.requests import PairingRequests
from server.pairing.transactions import Transactions

USERS = {**USERS, "lena": ("admin", ["L1"])}  # an admin of one location: no fleet-wide changes


class RecordingLink:
    """Where MasterLink would publish a command: kept, or refused as by a dead broker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []
        self.down = False

    def send_command(self, serial: str, command: dict) -> None:
        if self.down:
            raise MasterUnavailable("cannot queue the command: the broker is not running")
        self.sent.append((serial, command))


class MonitorConsole(ConsoleCalls):
    def __init__(self, root, database_url: str | None = None):
        """`database_url`: None for SQLite in root/data, else PostgreSQL (tests/databases.py)."""
        self.root = root
        self.database_url = database_url
        data = root / "data"
        data.mkdir(parents=True)
        self.clock = Clock()
        self.woken: list[str] = []
        self.sessions = sessions = open_database(data, database_url)
        transactions = Transactions(sessions, notify=self.woken.append)
        self.registry = Registry(transactions)
        requests = PairingRequests(transactions, server_spki=b"spki" * 8, ca_pem="")
        self.ingest = Ingest(sessions, self.woken.append)
        self.link = RecordingLink()
        self.archives = Archives(sessions, data, self.woken.append, keep=3)
        self.master = MasterService(Monitoring(sessions), Commands(sessions, self.woken.append),
                                    self.archives, self.link)  # type: ignore[arg-type]
        self.key = make_key(root / "keys", "ops")
        copy_keys(sorted((root / "keys" / "trusted").glob("*.pub")), data)
        self.catalog = Catalog(sessions, data)
        self.gate = UpgradeGate(sessions, self.catalog, max_concurrent=2)
        self.service = console_service(sessions, self.registry, requests, clock=self.clock,
                                       master=self.master, upgrades=self.gate)
        self.tokens, self.totp_secrets = {}, {}
        for name, (role, locations) in USERS.items():
            uri = self.service.users.add(name, role, locations, PASSWORD)["totp_uri"]
            self.totp_secrets[name] = pyotp.parse_uri(uri).secret if uri else None
            self.tokens[name] = self.service.tokens.create(name)
        self.app = create_console_app(self.service)
        self.client = TestClient(self.app, base_url="https://testserver")
        self.url = ""  # set when served over HTTPS for a browser

    def database_args(self) -> list[str]:
        """What an offline `batm-server` command needs to open this console's database."""
        return ["--database", self.database_url] if self.database_url else []

    # ------------------------------------------------------------------ the fleet's side

    def terminal(self, serial: str, location: str | None, paired: bool = True) -> None:
        self.registry.create_terminal(serial, "B", location)
        if paired:  # the pairing itself is tested elsewhere; here only its outcome matters
            with self.sessions() as session, session.begin():
                session.execute(update(Terminal).where(Terminal.serial == serial)
                                .values(state="paired"))

    def status(self, serial: str, **fields) -> None:
        """A status report from the terminal, as the broker delivers it to the server."""
        body = {"online": True, "serial": serial, "version": 20240101, "state": "InService",
                "screen": "in_service", "last_sync_error": None, "vpn_handshake_age": None,
                "outbox_pending": 0, **fields}
        refused = self.ingest.ingest([Incoming(serial, "status", json.dumps(body).encode())])
        assert not refused.refused, "the status was refused"

    def result(self, serial: str, command_id: str, ok: bool = True, **result) -> None:
        body = {"command_id": command_id, "ok": ok, "result": result}
        refused = self.ingest.ingest([Incoming(serial, "results", json.dumps(body).encode())])
        assert not refused.refused, "the result was refused"

    def upload(self, serial: str, command_id: str, body: bytes) -> dict:
        return self.archives.store_archive(serial, command_id, body)

    def add_bundle(self, version: int, install_from: str) -> None:
        src = make_tree(self.root / f"src-{version}", version, big=3000)
        make_bundle(self.root / f"{version}.fw", src, [self.key], version=version,
                    install_from=install_from)
        self.catalog.add(self.root / f"{version}.fw")


def ago(**delta: float) -> str:
    """A terminal's time stamp (iso_ms, as its status carries them) `delta` before now."""
    return iso_ms(utcnow() - datetime.timedelta(**delta))
