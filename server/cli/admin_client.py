"""How the CLI reaches the admin operations: the running server's admin socket, or the database.

A running server owns the state (and must wake long-polls on approve/unpair), so the CLI talks
to it through data_dir/admin.sock whenever it answers. With no server (no socket, or connection
refused: a stale socket after a crash) the CLI runs the same Service on the database directly,
so an operator can prepare terminals before the first start.

httpx is imported here at the top: the CLI imports this module only for commands that need it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlencode

import httpx

from batm_common.atomic import ensure_private_dir
from server.db.errors import DatabaseError
from server.errors import ServiceError
from server.paths import ADMIN_SOCKET, DATABASE_ENV, DB_FILE

TIMEOUT = 10.0


class AdminBackend(Protocol):
    def create_terminal(self, serial: str, scenario: str, location: str | None) -> dict: ...
    def list_terminals(self, filters: dict | None = None) -> list[dict]: ...
    def get_terminal(self, serial: str) -> dict: ...
    def unpair(self, serial: str) -> dict: ...
    def delete_terminal(self, serial: str) -> None: ...
    def list_pairing_requests(self) -> list[dict]: ...
    def approve(self, serial: str, code: str) -> dict: ...
    def generate_vpn(self, serial: str) -> dict: ...
    def enroll(self, scenario: str, items: list[dict]) -> int: ...
    def close(self) -> None: ...


class SocketBackend:
    """The admin API of a running server, over its Unix socket."""

    def __init__(self, socket_path: Path):
        self._client = httpx.Client(
            transport=httpx.HTTPTransport(uds=os.fspath(socket_path)),
            base_url="http://batm-admin",
            timeout=TIMEOUT,
        )

    def close(self) -> None:
        self._client.close()

    def _raw(self, method: str, path: str, body: dict | None = None,
             timeout: float = TIMEOUT) -> httpx.Response:
        try:
            response = self._client.request(method, path, json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise ServiceError(503, "unreachable", f"the server's admin API failed: {exc}") from exc
        if response.status_code >= 400:
            self._refusal(response)
        return response

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = TIMEOUT):
        try:
            response = self._client.request(method, path, json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise ServiceError(503, "unreachable", f"the server's admin API failed: {exc}") from exc
        if response.status_code == 204:
            return None
        if response.status_code >= 400:
            self._refusal(response)
        return response.json()

    @staticmethod
    def _refusal(response: httpx.Response) -> None:
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and "message" in data:
            raise ServiceError(response.status_code, str(data.get("error")), data["message"])
        raise ServiceError(
            response.status_code, "http_error",
            f"the server answered {response.status_code}: {response.text[:200]}",
        )

    def create_terminal(self, serial: str, scenario: str, location: str | None) -> dict:
        body = {"serial": serial, "scenario": scenario, "location": location}
        return self._call("POST", "/api/v1/terminals", body)

    def list_terminals(self, filters: dict | None = None) -> list[dict]:
        query = urlencode({k: v for k, v in (filters or {}).items() if v not in (None, "")})
        return self._call("GET", "/api/v1/terminals" + (f"?{query}" if query else ""))

    def get_terminal(self, serial: str) -> dict:
        return self._call("GET", f"/api/v1/terminals/{_path_part(serial)}")

    def unpair(self, serial: str) -> dict:
        return self._call("POST", f"/api/v1/terminals/{_path_part(serial)}/unpair")

    def delete_terminal(self, serial: str) -> None:
        self._call("DELETE", f"/api/v1/terminals/{_path_part(serial)}")

    def list_pairing_requests(self) -> list[dict]:
        return self._call("GET", "/api/v1/pairing-requests")

    def approve(self, serial: str, code: str) -> dict:
        return self._call(
            "POST", f"/api/v1/pairing-requests/{_path_part(serial)}/approve", {"code": code}
        )

    def generate_vpn(self, serial: str) -> dict:
        return self._call("POST", f"/api/v1/terminals/{_path_part(serial)}/vpn")

    def enroll(self, scenario: str, items: list[dict]) -> int:
        """Enroll in requests of the server's maximum; how many were enrolled."""
        from server.pairing.enrollment import MAX_ENROLL

        enrolled = 0
        for start in range(0, len(items), MAX_ENROLL):
            answer = self._call("POST", "/api/v1/terminals/enroll",
                                {"scenario": scenario,
                                 "terminals": items[start:start + MAX_ENROLL]}, timeout=600)
            enrolled += answer["enrolled"]
        return enrolled

    # -- master service

    def status(self, serial: str, history: int = 0) -> dict:
        return self._call("GET", f"/api/v1/terminals/{_path_part(serial)}/status"
                                 f"?history={int(history)}")

    def events(self, serial: str, limit: int = 100) -> dict:
        return self._call("GET", f"/api/v1/terminals/{_path_part(serial)}/events?limit={limit}")

    def issue_command(self, serial: str, command: str, args: dict) -> dict:
        return self._call("POST", f"/api/v1/terminals/{_path_part(serial)}/commands",
                          {"command": command, "args": args})

    def command(self, serial: str, command_id: str, wait: float = 0) -> dict:
        path = f"/api/v1/terminals/{_path_part(serial)}/commands/{_path_part(command_id)}"
        if wait:
            path += f"?wait={wait:g}"
        return self._call("GET", path, timeout=wait + TIMEOUT)

    def archives(self, serial: str) -> list[dict]:
        return self._call("GET", f"/api/v1/terminals/{_path_part(serial)}/archives")

    def download_archive(self, archive_id: str) -> bytes:
        response = self._raw("GET", f"/api/v1/archives/{_path_part(archive_id)}")
        return response.content

    def broker_restart(self) -> dict:
        return self._call("POST", "/api/v1/broker/restart", timeout=60)

    def broker(self) -> dict:
        return self._call("GET", "/api/v1/broker")


def _path_part(serial: str) -> str:
    # Serials are validated by the server; quoting keeps a bad one from changing the route.
    return quote(serial, safe="")


class DirectBackend:
    """The server's operations on the database, for when no server runs."""

    def __init__(self, data_dir: Path):
        # Imported here: a CLI talking to a running server need not load SQLAlchemy.
        from server.db.engine import open_database
        from server.master.archives import Archives
        from server.master.monitoring import Monitoring
        from server.pairing.registry import Registry
        from server.pairing.requests import PairingRequests
        from server.pairing.transactions import Transactions

        self._sessions = open_database(data_dir)
        transactions = Transactions(self._sessions)
        self._registry = Registry(transactions)
        self._requests = PairingRequests(transactions)
        self._monitoring = Monitoring(self._sessions)
        self._archives = Archives(self._sessions, data_dir)

    def create_terminal(self, serial: str, scenario: str, location: str | None) -> dict:
        return self._registry.create_terminal(serial, scenario, location)

    def list_terminals(self, filters: dict | None = None) -> list[dict]:
        from server.console.fleet import Fleet
        from server.console.monitor import ListQuery

        given = {k: v for k, v in (filters or {}).items() if v not in (None, "")}
        hide = str(given.pop("hide_synced", "")).lower() in ("true", "1", "yes")
        return Fleet(self._sessions).listing(ListQuery(hide_synced=hide, **given))

    def get_terminal(self, serial: str) -> dict:
        return self._registry.get_terminal(serial)

    def unpair(self, serial: str) -> dict:
        return self._registry.unpair(serial)

    def delete_terminal(self, serial: str) -> None:
        self._registry.delete_terminal(serial)

    def list_pairing_requests(self) -> list[dict]:
        return self._requests.list_pairing_requests()

    def approve(self, serial: str, code: str) -> dict:
        return self._requests.approve(serial, code)

    def generate_vpn(self, serial: str) -> dict:
        """Allocates the tunnel address; the server adds the peer when it runs."""
        from server.vpn.service import VpnService

        return VpnService(self._sessions).generate(serial)

    def status(self, serial: str, history: int = 0) -> dict:
        return self._monitoring.status(serial, history)

    def events(self, serial: str, limit: int = 100) -> dict:
        return self._monitoring.events(serial, limit)

    def archives(self, serial: str) -> list[dict]:
        return self._archives.archives(serial)

    def _needs_server(self, *_args, **_kwargs):
        raise ServiceError(503, "not_running",
                           "this needs the running server (its broker reaches the terminals); "
                           "no batm-server runs with this data dir")

    issue_command = command = download_archive = broker_restart = broker = _needs_server
    enroll = _needs_server  # broker accounts go to the running broker

    def close(self) -> None:
        from server.db.engine import close_database

        close_database(self._sessions)


def _server_answers(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(TIMEOUT)
        try:
            probe.connect(os.fspath(socket_path))
        except (FileNotFoundError, ConnectionRefusedError):
            return False  # a stale socket: the server is gone
        except PermissionError as exc:
            raise ServiceError(
                403, "forbidden", f"no permission to use the server's admin socket {socket_path}"
            ) from exc
    return True


def open_backend(data_dir: Path, *, may_create: bool = False) -> AdminBackend:
    """The running server if there is one, else the database (made only if `may_create`)."""
    data_dir = Path(data_dir)
    if _server_answers(data_dir / ADMIN_SOCKET):
        return SocketBackend(data_dir / ADMIN_SOCKET)
    elsewhere = os.environ.get(DATABASE_ENV)  # --database / $BATM_DATABASE_URL: not the file
    if not elsewhere and not (data_dir / DB_FILE).exists():
        if not may_create:
            raise ServiceError(
                404, "no_data",
                f"no batm-server is running with data dir {data_dir} and it holds no database; "
                "check --data-dir",
            )
        try:
            ensure_private_dir(data_dir)
        except OSError as exc:
            raise ServiceError(
                500, "no_data", f"cannot create the data dir {data_dir}: {exc.strerror}"
            ) from exc
    try:
        return DirectBackend(data_dir)
    except DatabaseError:
        raise  # already a sentence naming the database and the problem
    except Exception as exc:  # SQLAlchemy wraps OS errors in many ways; say what failed
        raise ServiceError(
            500, "database", f"cannot open the database in {data_dir}: {exc}"
        ) from exc
