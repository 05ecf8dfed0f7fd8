"""Scenario A's glue into the server: settings, start-up, the gate's answers, the admin API, the
broker's tunnel listener.

How the master service is offered to scenario-A terminals only through the tunnel
(docs/protocol.md § VPN): Mosquitto gets a second TLS listener on the server's tunnel address
(198.51.100.1, same port), and a scenario-A terminal's dynamic-security client is bound to the
client id "<serial>@vpn" (dynsec setClientId). The rig-side listener sets
`use_username_as_clientid true`, which replaces every client id there by the username (the
serial) *before* authentication, so a scenario-A terminal's credentials fail on it (CONNACK
not authorized) whatever it sends, while scenario-B terminals (no bound client id) are not
affected. On the tunnel listener the terminal connects as "<serial>@vpn" and is accepted.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from batm_common.hostaddr import AddressError, ServerAddress, parse_server_address
from server.errors import ServiceError
from server.vpn_endpoint import (
    DEFAULT_INTERFACE,
    DEFAULT_MTU,
    DEFAULT_PORT,
    DEFAULT_SUBNET,
    EndpointSettings,
    ServerVpn,
)
from server.vpn_service import VpnService, client_id


@dataclass(frozen=True)
class VpnSettings:
    """`batm-server run --vpn-endpoint HOST[:PORT] [--vpn-interface N] [--vpn-subnet S]…`"""

    endpoint: ServerAddress  # what terminals are told; PORT is also where the endpoint listens
    interface: str = DEFAULT_INTERFACE
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network = DEFAULT_SUBNET
    mtu: int = DEFAULT_MTU


def parse_endpoint(text: str) -> ServerAddress:
    stripped = text.strip()
    if ":" not in stripped.rsplit("]", 1)[-1]:
        stripped = f"{stripped}:{DEFAULT_PORT}"
    return parse_server_address(stripped)


def parse_subnet(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        subnet = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise AddressError(f"not a network like 198.51.100.0/24 ({exc})") from None
    if subnet.num_addresses < 4:
        raise AddressError("the tunnel subnet needs room for the server and terminals")
    return subnet


def start_vpn(settings: VpnSettings | None, data_dir: Path, sessions) -> VpnService:
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


def tunnel_listener_lines(tunnel_host: str, port: int, cert: Path, key: Path) -> list[str]:
    """Appended right after the terminals' listener in mosquitto.conf (see the module doc)."""
    return [
        "# scenario A terminals are bound to client id <serial>@vpn: refused on this listener",
        "use_username_as_clientid true",
        "",
        "# scenario A terminals: through the WireGuard tunnel only",
        f"listener {port} {tunnel_host}",
        f"certfile {cert}",
        f"keyfile {key}",
        "tls_version tlsv1.2",
        "",
    ]


class VpnGate:
    """The gate's scenario-A additions: check-in answer, credentials answer.

    A server started without --vpn-endpoint offers no VPN: it answers as before, and its
    scenario-A terminals reach the broker directly (development, tests). With the endpoint,
    scenario-A terminals get the master service only through the tunnel."""

    def __init__(self, service: VpnService):
        self.service = service

    def _broker(self, master) -> str:
        host = self.service.server_ip
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{master.broker.mqtt_port}"

    def checkin(self, serial: str, body: dict, gate_host: str | None, master) -> dict:
        if self.service.endpoint is None:
            return {}
        extra = self.service.checkin(serial, body.get("vpn_public_key"), gate_host)
        if extra.get("scenario") == "A" and master is not None:
            extra["broker"] = self._broker(master)  # the master service: tunnel address only
        return extra

    def credentials(self, serial: str, master) -> dict:
        """After the broker client was made: bind it to the tunnel (see the module doc)."""
        if self.service.endpoint is None or self.service.scenario(serial) != "A":
            return {}
        from server.master import MasterUnavailable

        bound = client_id(serial)
        responses = master.dynsec([{"command": "setClientId", "username": serial,
                                    "clientid": bound}])
        errors = [r.get("error") for r in responses if r.get("error")]
        if errors:
            raise MasterUnavailable(f"binding the client id failed: {errors[0]}")
        return {"broker": self._broker(master), "client_id": bound}


def install_vpn_routes(app: FastAPI, service: VpnService | None) -> None:
    def need() -> VpnService:
        if service is None:
            raise ServiceError(503, "vpn_unavailable", "this server has no VPN service")
        return service

    @app.post("/api/v1/terminals/{serial}/vpn")
    async def generate_vpn(serial: str) -> JSONResponse:
        return JSONResponse(need().generate(serial))

    @app.get("/api/v1/terminals/{serial}/vpn")
    async def get_vpn(serial: str) -> JSONResponse:
        return JSONResponse(need().view(serial))

    @app.get("/api/v1/vpn")
    async def vpn_endpoint() -> JSONResponse:
        endpoint = need().endpoint
        if endpoint is None:
            return JSONResponse({"running": False})
        return JSONResponse({
            "running": True, "interface": endpoint.iface.name, "kind": endpoint.iface.kind,
            "listen_port": endpoint.settings.listen_port,
            "address": str(endpoint.settings.address), "public_key": endpoint.public_key,
            "restarts": endpoint.restarts,
        })


def describe(view: dict) -> str:
    """`batm-server terminal vpn SERIAL`'s line for people."""
    return (f"VPN configuration of {view['serial']}: tunnel address {view['tunnel_address']} "
            f"(server {view['server_tunnel_address']}); peer: {view['peer']}")


def add_vpn_run_options(run) -> None:
    run.add_argument("--vpn-endpoint", metavar="HOST[:PORT]",
                     help="run the WireGuard endpoint for scenario A terminals: listen on UDP "
                          f"PORT (default {DEFAULT_PORT}) and tell terminals HOST:PORT")
    run.add_argument("--vpn-interface", default=DEFAULT_INTERFACE, metavar="NAME",
                     help=f"the endpoint's interface (default {DEFAULT_INTERFACE}; unique per "
                          "machine: wireguard-go's socket path is global)")
    run.add_argument("--vpn-subnet", default=str(DEFAULT_SUBNET), metavar="CIDR",
                     help=f"tunnel addresses (default {DEFAULT_SUBNET}; the server is the first)")
    run.add_argument("--vpn-mtu", type=int, default=DEFAULT_MTU, metavar="BYTES",
                     help=f"tunnel MTU told to terminals (default {DEFAULT_MTU})")


def vpn_settings(args) -> VpnSettings | None:
    """From the run options; AddressError naming the option."""
    if not args.vpn_endpoint:
        return None
    from batm_common.wireguard import WgError, check_ifname

    try:
        endpoint = parse_endpoint(args.vpn_endpoint)
    except AddressError as exc:
        raise AddressError(f"--vpn-endpoint: {exc}") from None
    try:
        interface = check_ifname(args.vpn_interface)
    except WgError as exc:
        raise AddressError(f"--vpn-interface: {exc}") from None
    try:
        subnet = parse_subnet(args.vpn_subnet)
    except AddressError as exc:
        raise AddressError(f"--vpn-subnet: {exc}") from None
    if not 1280 <= args.vpn_mtu <= 9000:
        raise AddressError(f"--vpn-mtu: must be 1280-9000, not {args.vpn_mtu}")
    return VpnSettings(endpoint, interface, subnet, args.vpn_mtu)
