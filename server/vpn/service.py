"""Scenario A on the server: tunnel addresses, terminals' WireGuard keys, and the gate's answer.

`terminal vpn SERIAL` (admin API POST /api/v1/terminals/{serial}/vpn) allocates the next free
address of the tunnel subnet (persisted in the table vpn_configs, stable across restarts and
unpairs: "previously paired, VPN configured"). A paired scenario-A terminal sends its WireGuard
public key in every signed check-in; the server records it and adds the peer (with that key —
the server never makes a terminal's key). Unpair, re-pairing with another identity and deletion
forget the key and remove the peer at once (server.app's revoke hook).

`start_vpn` makes the service for `batm-server run`: with --vpn-endpoint, the endpoint too.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from batm_common.clock import utcnow
from server.db.terminals import Terminal
from server.db.vpn import VpnConfigRow
from server.errors import ServiceError, bad_request
from server.pairing.registry import find_terminal
from server.pairing.states import TerminalState
from server.pairing.views import iso
from server.vpn.endpoint import EndpointSettings, ServerVpn
from server.vpn.settings import DEFAULT_MTU, DEFAULT_SUBNET, VpnSettings

log = logging.getLogger("batm-server.vpn")


def parse_public_key(value: object) -> str:
    if not isinstance(value, str):
        raise bad_request("vpn_public_key: must be a base64 WireGuard public key")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("vpn_public_key: is not base64") from None
    if len(raw) != 32 or not any(raw):
        raise bad_request("vpn_public_key: must be 32 bytes and not all zero")
    return base64.b64encode(raw).decode()


@dataclass
class VpnService:
    sessions: sessionmaker
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network = DEFAULT_SUBNET
    endpoint: ServerVpn | None = None  # None: no endpoint runs (CLI on the database)
    endpoint_host: str | None = None  # what terminals are told; None: the host they reached
    endpoint_port: int | None = None
    mtu: int = DEFAULT_MTU

    @property
    def server_ip(self) -> str:
        return str(self.subnet.network_address + 1)

    # ------------------------------------------------------------------ operator

    def generate(self, serial: str) -> dict:
        """Allocate the terminal's tunnel address (idempotent); 404 for an unknown terminal."""
        with self.sessions() as session, session.begin():
            terminal = find_terminal(session, serial)
            if terminal.scenario != "A":
                raise ServiceError(409, "not_scenario_a", (
                    f"terminal {serial!r} is a scenario B terminal (it reaches the master "
                    "service directly); only scenario A terminals use the VPN"))
            row = session.get(VpnConfigRow, serial)
            created = row is None
            if row is None:
                row = VpnConfigRow(serial=serial, tunnel_address=self._free_address(session),
                                   created_at=utcnow())
                session.add(row)
            paired = terminal.state == TerminalState.PAIRED
            key, address = row.public_key, row.tunnel_address
        if created:
            log.info("vpn: configuration of %s generated (tunnel address %s)", serial, address)
        if paired and key and self.endpoint is not None:
            self.endpoint.set_peer(serial, key, address)
        return self.view(serial)

    def _free_address(self, session) -> str:
        used = set(session.scalars(select(VpnConfigRow.tunnel_address)).all())
        for host in self.subnet.hosts():
            if host == self.subnet.network_address + 1:
                continue  # the server's own
            if str(host) not in used:
                return str(host)
        raise ServiceError(409, "vpn_full", f"every address of the tunnel subnet {self.subnet} "
                                            "is allocated")

    def view(self, serial: str) -> dict:
        with self.sessions() as session:
            find_terminal(session, serial)
            row = session.get(VpnConfigRow, serial)
        if row is None:
            raise ServiceError(404, "no_vpn", (
                f"terminal {serial!r} has no VPN configuration; generate it with "
                f"`batm-server terminal vpn {serial}`"))
        peer = self.endpoint.peer_state(serial) if self.endpoint is not None else None
        if self.endpoint is None:
            state = "no endpoint running"
        elif peer is not None:
            state = "active"
        else:
            state = "waiting for the terminal (its key arrives with its next check-in)"
        return {
            "serial": serial,
            "tunnel_address": f"{row.tunnel_address}/{self.subnet.prefixlen}",
            "server_tunnel_address": self.server_ip,
            "terminal_public_key": row.public_key,
            "server_public_key": self.endpoint.public_key if self.endpoint else None,
            "endpoint_port": self.endpoint_port,
            "peer": state,
            "peer_endpoint": peer.endpoint if peer else None,
            "latest_handshake": iso(datetime.datetime.fromtimestamp(
                peer.last_handshake, datetime.UTC)) if peer and peer.last_handshake else None,
            "created_at": iso(row.created_at),
        }

    # ------------------------------------------------------------------ gate

    def scenario(self, serial: str) -> str | None:
        with self.sessions() as session:
            terminal = session.get(Terminal, serial)
            return terminal.scenario if terminal else None

    def checkin(self, serial: str, public_key: object, gate_host: str | None) -> dict:
        """The check-in answer's VPN part for an authenticated, paired terminal."""
        with self.sessions() as session, session.begin():
            terminal = session.get(Terminal, serial)
            if terminal is None or terminal.scenario != "A":
                return {"scenario": "B"}
            key = parse_public_key(public_key) if public_key is not None else None
            row = session.get(VpnConfigRow, serial)
            if key is not None and row is not None and row.public_key != key:
                other = session.scalars(select(VpnConfigRow.serial).where(
                    VpnConfigRow.public_key == key)).first()
                if other is not None and other != serial:
                    raise bad_request("vpn_public_key: this key belongs to another terminal")
                row.public_key = key
            address = row.tunnel_address if row is not None else None
        if row is None:
            return self._missing("not_configured", (
                "the operator has not generated this terminal's VPN configuration "
                f"(batm-server terminal vpn {serial})"))
        if self.endpoint is None:
            return self._missing("endpoint_disabled", "the server runs no VPN endpoint "
                                 "(batm-server run --vpn-endpoint HOST:PORT)")
        if key is None:
            return self._missing("no_key", "the check-in carried no vpn_public_key")
        self.endpoint.set_peer(serial, key, address)
        host = self.endpoint_host or gate_host or self.server_ip
        host = f"[{host}]" if ":" in host else host
        return {"scenario": "A", "vpn": {
            "server_public_key": self.endpoint.public_key,
            "endpoint": f"{host}:{self.endpoint_port}",
            "tunnel_address": f"{address}/{self.subnet.prefixlen}",
            "server_tunnel_address": self.server_ip,
            "allowed_ips": [f"{self.server_ip}/{self.subnet.max_prefixlen}"],
            "mtu": self.mtu,
        }}

    @staticmethod
    def _missing(reason: str, message: str) -> dict:
        return {"scenario": "A", "vpn": None, "vpn_reason": reason, "vpn_message": message}

    # ------------------------------------------------------------------ revocation

    def revoke(self, serial: str) -> None:
        """Unpair / delete / re-pair with another key: forget the key, drop the peer now."""
        with self.sessions() as session, session.begin():
            row = session.get(VpnConfigRow, serial)
            if row is not None:
                row.public_key = None
        if self.endpoint is not None:
            self.endpoint.remove_peer(serial)

    def drop_revoked_peers(self, serial: str | None = None) -> list[str]:
        """The peers (of `serial`, or all) whose key the database no longer grants: another
        replica revoked them (unpair, delete, a new key) and this endpoint heard of it by a
        wake-up or catches up now (master/accounts.py does the same for MQTT accounts)."""
        if self.endpoint is None:
            return []
        held = self.endpoint.peer_keys()
        if serial is not None:
            held = {serial: held[serial]} if serial in held else {}
        if not held:
            return []
        with self.sessions() as session:
            granted = dict(session.execute(
                select(VpnConfigRow.serial, VpnConfigRow.public_key)
                .join(Terminal, Terminal.serial == VpnConfigRow.serial)
                .where(Terminal.state == TerminalState.PAIRED,
                       VpnConfigRow.serial.in_(list(held)))).all())
        dropped = [s for s, key in held.items() if granted.get(s) != key]
        for each in dropped:
            self.endpoint.remove_peer(each)
        return dropped

    def restore_peers(self) -> int:
        """At server start: the peers of every paired scenario-A terminal with a key."""
        if self.endpoint is None:
            return 0
        with self.sessions() as session:
            rows = session.execute(
                select(VpnConfigRow.serial, VpnConfigRow.public_key, VpnConfigRow.tunnel_address)
                .join(Terminal, Terminal.serial == VpnConfigRow.serial)
                .where(Terminal.state == TerminalState.PAIRED, Terminal.scenario == "A",
                       VpnConfigRow.public_key.is_not(None))).all()
        for serial, key, address in rows:
            self.endpoint.set_peer(serial, key, address)
        return len(rows)


def start_vpn(settings: VpnSettings | None, data_dir: Path, sessions: sessionmaker) -> VpnService:
    """The VPN service; with settings, the endpoint too (started, peers restored)."""
    if settings is None:
        return VpnService(sessions)
    endpoint = ServerVpn(EndpointSettings(Path(data_dir), settings.interface,
                                          settings.endpoint.port, settings.subnet, settings.mtu))
    endpoint.start()
    service = VpnService(sessions, settings.subnet, endpoint, settings.endpoint.host,
                         settings.endpoint.port, settings.mtu)
    try:
        service.restore_peers()
    except Exception:
        endpoint.stop()
        raise
    return service
