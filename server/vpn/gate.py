"""The gate's VPN side: what a scenario-A terminal's check-in and MQTT credentials answer add.

A server started without --vpn-endpoint offers no VPN: it answers as before, and its scenario-A
terminals reach the broker directly (development, tests). With the endpoint, scenario-A terminals
get the master service only through the tunnel: the check-in names the broker at the server's
tunnel address, and their MQTT user is bound to the client id "<serial>@vpn", which only the
broker's tunnel listener accepts (master/broker.py explains the mechanism).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.vpn.service import VpnService

if TYPE_CHECKING:
    from server.master.link import MasterLink

CLIENT_ID_SUFFIX = "@vpn"  # '@' never occurs in a serial: no clash with another terminal's id


def client_id(serial: str) -> str:
    return serial + CLIENT_ID_SUFFIX


class VpnGate:
    def __init__(self, service: VpnService):
        self.service = service

    def _broker(self, master: MasterLink) -> str:
        host = self.service.server_ip
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{master.broker.mqtt_port}"

    def checkin(self, serial: str, body: dict, gate_host: str | None,
                master: MasterLink | None) -> dict:
        if self.service.endpoint is None:
            return {}
        extra = self.service.checkin(serial, body.get("vpn_public_key"), gate_host)
        if extra.get("scenario") == "A" and master is not None:
            extra["broker"] = self._broker(master)  # the master service: tunnel address only
        return extra

    def credentials(self, serial: str, master: MasterLink) -> dict:
        """After the broker client was made: bind it to the tunnel (MasterUnavailable if the
        broker refuses)."""
        if self.service.endpoint is None or self.service.scenario(serial) != "A":
            return {}
        bound = client_id(serial)
        master.bind_client_id(serial, bound)
        return {"broker": self._broker(master), "client_id": bound}
