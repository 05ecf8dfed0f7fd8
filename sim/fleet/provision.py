"""A fleet's terminals made and provisioned through the server's real paths, kept in D/fleet.json.

Each simulated terminal has what a real one makes on the device: an Ed25519 identity key and an
MQTT password. Provisioning goes through the server's own doors, never its database:
1. enrollment — the operator's admin API (`POST /api/v1/terminals/enroll`) pre-approves the
   serials with their public keys, as a factory list would;
2. "signed" (the default): each terminal signs `POST /api/v1/master/credentials` with its
   identity key and hands over its password; the server creates its broker account through
   the dynamic-security plugin and answers where its broker is — one account at a time;
   "bulk": the enrollment carries each terminal's password hash, the server writes the
   accounts into the plugin's file at once (one broker restart per request), and each
   terminal learns its broker from a signed check-in (`"master": true`).

With several server replicas, each running its own broker (servers.py), a terminal's account
belongs on the broker the fleet's assignment gives it (server/master/assignment.py, the same
rendezvous hash every replica computes): in bulk, each replica is sent the enrollment of the
terminals its broker holds, as a load balancer routing by serial would; signed, each terminal's
credentials request goes to that replica (another answers 503 naming it). Check-ins go to any
replica: each answers the same broker.

D/fleet.json keeps the fleet (keys, passwords, broker addresses; 0600), so a second run with the
same D and server reuses what is provisioned: provisioning is O(N²) in Mosquitto 2.0's plugin
(it rewrites its whole JSON file after every change; docs/deployment.md), so a large fleet is
provisioned once.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from batm_common.atomic import atomic_write
from batm_common.signing import b64url, sign_headers, unb64url

FLEET_FILE = "fleet.json"
ENROLL_BATCH = 500  # signed mode: small requests, no broker restart
BULK_BATCH = 10000  # the admin API's limit per request (server/pairing/enrollment.py)
CREDENTIALS_PATH = "/api/v1/master/credentials"
CHECKIN_PATH = "/api/v1/checkin"
CONCURRENT_CREDENTIALS = 16


class ProvisionError(Exception):
    """The server refused or failed a provisioning step; str() says which and why."""


@dataclass
class SimTerminal:
    serial: str
    key: str  # the identity key's raw private bytes, base64url
    password: str
    enrolled: bool = False
    broker: str | None = None  # HOST:PORT from the credentials answer; None: not granted yet

    def private_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(unb64url(self.key))

    def public_key(self) -> str:
        raw = self.private_key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return b64url(raw)


def serial_of(index: int) -> str:
    return f"FLEET{index:07d}"


def new_terminal(index: int) -> SimTerminal:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    from agent.master.credentials import new_password

    raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw,
                                                     NoEncryption())
    return SimTerminal(serial_of(index), b64url(raw), new_password())


def load_fleet(directory: Path, brokers: list[str]) -> list[SimTerminal]:
    """The fleet kept in D, provisioned for these brokers; ProvisionError when D's fleet was
    provisioned for others (its accounts are on those brokers)."""
    path = directory / FLEET_FILE
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
        fleet = [SimTerminal(**item) for item in data["terminals"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProvisionError(f"{path} is unusable ({exc}); remove it and the server dir "
                             "to provision a new fleet") from exc
    # A fleet.json of before replicas names no brokers: its terminals' own addresses say.
    kept = data.get("brokers") or sorted({t.broker for t in fleet if t.broker})
    if kept and sorted(kept) != sorted(brokers):
        raise ProvisionError(f"the fleet in {directory} was provisioned for {len(kept)} "
                             f"broker(s) ({', '.join(kept)}), this run has {len(brokers)}: "
                             "run it with the same --replicas, or use another --dir")
    return fleet


def save_fleet(directory: Path, fleet: list[SimTerminal], brokers: list[str]) -> None:
    data = {"brokers": brokers, "terminals": [asdict(t) for t in fleet]}
    atomic_write(directory / FLEET_FILE, json.dumps(data).encode(), mode=0o600)


def grow_fleet(fleet: list[SimTerminal], size: int) -> list[SimTerminal]:
    return fleet + [new_terminal(i) for i in range(len(fleet), size)]


def admin_client(socket_path: Path) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(socket_path)),
                             base_url="http://batm-admin", timeout=120)


def _refusal(what: str, response: httpx.Response) -> ProvisionError:
    try:
        message = response.json().get("message", response.text)
    except ValueError:
        message = response.text
    return ProvisionError(f"{what}: the server answered {response.status_code}: {message}")


def _entry(terminal: SimTerminal, bulk: bool) -> dict:
    entry = {"serial": terminal.serial, "identity_key": terminal.public_key()}
    if bulk:  # what the plugin stores; the password itself stays with the terminal
        from server.master.dynsec import password_hash

        entry["mqtt"] = password_hash(terminal.password)
    return entry


async def enroll(admin: httpx.AsyncClient, terminals: list[SimTerminal],
                 bulk: bool = False) -> None:
    """Through one replica's admin API (in bulk: the one whose broker holds these terminals)."""
    size = BULK_BATCH if bulk else ENROLL_BATCH
    for start in range(0, len(terminals), size):
        batch = terminals[start:start + size]
        body = {"scenario": "B", "terminals": [_entry(t, bulk) for t in batch]}
        response = await admin.post("/api/v1/terminals/enroll", json=body)
        if response.status_code != 201:
            raise _refusal("enrolling the fleet", response)
        for terminal in batch:
            terminal.enrolled = True


def gate_client(gate: str, ca_file: Path) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = False  # terminals are pointed at IPs (agent/gate_client.py)
    return httpx.AsyncClient(base_url=f"https://{gate}", verify=context, timeout=120,
                             limits=httpx.Limits(max_connections=CONCURRENT_CREDENTIALS))


async def obtain_credentials(gate: httpx.AsyncClient, terminal: SimTerminal) -> None:
    body = json.dumps({"password": terminal.password}).encode()
    headers = sign_headers(terminal.private_key(), terminal.serial, "POST", CREDENTIALS_PATH,
                           body)
    response = await gate.post(CREDENTIALS_PATH, content=body,
                               headers=headers | {"Content-Type": "application/json"})
    if response.status_code != 200:
        raise _refusal(f"credentials of {terminal.serial}", response)
    answer = response.json()
    if answer.get("username") != terminal.serial or answer.get("client_id") != terminal.serial:
        raise ProvisionError(f"credentials of {terminal.serial}: unexpected answer {answer}")
    terminal.broker = str(answer["broker"])


async def checkin(gate: httpx.AsyncClient, terminal: SimTerminal) -> None:
    """A signed check-in asking where the broker is (bulk accounts need no credentials)."""
    body = json.dumps({"version": 20240101, "master": True}).encode()
    headers = sign_headers(terminal.private_key(), terminal.serial, "POST", CHECKIN_PATH, body)
    response = await gate.post(CHECKIN_PATH, content=body,
                               headers=headers | {"Content-Type": "application/json"})
    if response.status_code != 200 or "broker" not in response.json():
        raise _refusal(f"check-in of {terminal.serial}", response)
    terminal.broker = str(response.json()["broker"])


async def provision(fleet: list[SimTerminal], admins: list[httpx.AsyncClient],
                    gates: list[httpx.AsyncClient], owner: Callable[[str], int],
                    bulk: bool = False, on_progress=lambda _done, _total: None) -> int:
    """Enroll and grant whatever of `fleet` is not yet; how many were provisioned now.
    `admins`/`gates`: each replica's; `owner(serial)`: the index of the replica whose broker
    the terminal is assigned."""
    fresh = [t for t in fleet if not t.enrolled]
    if bulk:  # each broker's accounts through its own replica
        for index, admin in enumerate(admins):
            await enroll(admin, [t for t in fresh if owner(t.serial) == index], bulk)
    else:
        await enroll(admins[0], fresh)
    todo = [t for t in fleet if t.broker is None]
    queue: asyncio.Queue[SimTerminal] = asyncio.Queue()
    for terminal in todo:
        queue.put_nowait(terminal)
    done = [0]

    async def worker() -> None:
        while not queue.empty():
            terminal = queue.get_nowait()
            if bulk:  # any replica knows where the terminal's broker is
                await checkin(random.choice(gates), terminal)
            else:
                await obtain_credentials(gates[owner(terminal.serial)], terminal)
            done[0] += 1
            if done[0] % 500 == 0:
                on_progress(done[0], len(todo))

    await asyncio.gather(*(worker() for _ in range(CONCURRENT_CREDENTIALS)))
    return len(todo)


async def forget(admin: httpx.AsyncClient, terminal: SimTerminal) -> None:
    """Delete a (revoked) terminal on the server, so that the next run enrolls it afresh
    (through the replica whose broker held its account: that one removes it)."""
    response = await admin.delete(f"/api/v1/terminals/{terminal.serial}")
    if response.status_code not in (204, 404):
        raise _refusal(f"deleting {terminal.serial}", response)
    terminal.enrolled = False
    terminal.broker = None
