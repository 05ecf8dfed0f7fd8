"""rig.json: where the parts of a rig are (architecture §5; the simulated and the real rig alike).

The contract fields are::

    {"server": {"data_dir", "netns", "address"},
     "terminals": [{"serial", "version", "state_dir", "netns", "console"}]}

The simulator adds (all optional when loading, so a hand-written real-rig file stays short):

top level
    "kind": "sim" | "booted" | "real"   who made the file (booted: sim/booted, systemd in nspawn)
    "rig_id": "ab12cd"           short id in every namespace/link name of this rig
    "scenario": "A" | "B"        deployment scenario the rig was brought up for
    "supervisor": "D/sim.sock"   the supervisor's control socket (docs/protocol.md §5)
    "isolation": "netns" | "loopback"   loopback = started without root, no namespaces
    "left_out": ["namespaces", "xvfb", ...]   parts the simulator could not provide
    "logs_dir": "D/logs"
server
    "gate": "192.0.2.1:8443"     where terminals reach the gate
    "vpn": {...} | null          scenario A: the WireGuard endpoint (sim/vpn.py)
    "broker": "192.0.2.1:8883"   where terminals reach the master service's MQTT broker (TLS)
    "console_url": "https://192.0.2.1:8445/"   the operator console (pages and HTTPS API)
    "log": "D/logs/server.log"
terminals[]
    "address": "192.0.2.10"      the terminal's own IP on the rig network
    "display": ":N" | null       the X display its batm-display window is on
    "screenshot_dir", "hardware_dir", "slots_dir"
    "agent_log", "console_log", "display_log"

Loading validates every field and fails with a message naming it (``terminals[1].version``), so
a bad rig file stops a test session at collection time rather than halfway through a test.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

SCREEN_SIZE = "800x480"


class RigFileError(ValueError):
    """rig.json is missing, unreadable or has a bad field; str() names the field."""


def _fail(where: str, problem: str) -> RigFileError:
    return RigFileError(f"rig file: {where}: {problem}")


def _str(data: dict, key: str, where: str, *, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if optional:
            return None
        raise _fail(f"{where}.{key}", "is missing")
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{where}.{key}", f"must be a non-empty string, got {value!r}")
    return value


def _path(data: dict, key: str, where: str, *, optional: bool = False) -> str | None:
    value = _str(data, key, where, optional=optional)
    if value is not None and not os.path.isabs(value):
        raise _fail(f"{where}.{key}", f"must be an absolute path, got {value!r}")
    return value


def _host(value: str, where: str) -> None:
    host = value
    if value.startswith("[") and "]" in value:
        host = value[1 : value.index("]")]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not host.replace("-", "").replace(".", "").isalnum():
            raise _fail(where, f"is not an IP address or host name: {value!r}") from None


def _host_port(value: str, where: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise _fail(where, f"must be HOST:PORT with a port 1-65535, got {value!r}")
    _host(host, where)


def _unknown_keys(data: dict, cls: type, where: str) -> None:
    known = {f.name for f in fields(cls)}
    extra = sorted(set(data) - known)
    if extra:
        raise _fail(where, f"unknown field(s) {', '.join(extra)} (typo?)")


def _vpn(value: Any, where: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(where, f"must be an object or null, got {type(value).__name__}")
    endpoint = _str(value, "endpoint", where)
    _host_port(endpoint, f"{where}.endpoint")
    _str(value, "interface", where)
    return dict(value)


@dataclass(frozen=True)
class ServerResource:
    """Where the reference server is."""

    data_dir: str
    netns: str | None
    address: str
    gate: str | None = None
    broker: str | None = None
    console_url: str | None = None
    log: str | None = None
    vpn: dict | None = None  # scenario A: endpoint, interface, subnet, … (sim/vpn.py)
    database: str | None = None  # the server's database URL when not its SQLite file
    replicas: tuple[ServerResource, ...] = ()  # the other server processes on that database

    @classmethod
    def from_dict(cls, data: Any, where: str = "server") -> ServerResource:
        if not isinstance(data, dict):
            raise _fail(where, f"must be an object, got {type(data).__name__}")
        _unknown_keys(data, cls, where)
        if "netns" not in data:
            raise _fail(f"{where}.netns", "is missing (null when the server is not in a netns)")
        address = _str(data, "address", where)
        _host(address, f"{where}.address")
        gate = _str(data, "gate", where, optional=True)
        if gate is not None:
            _host_port(gate, f"{where}.gate")
        broker = _str(data, "broker", where, optional=True)
        if broker is not None:
            _host_port(broker, f"{where}.broker")
        console_url = _str(data, "console_url", where, optional=True)
        if console_url is not None:
            hostport = console_url.removeprefix("https://").rstrip("/")
            if not console_url.startswith("https://") or "/" in hostport:
                raise _fail(f"{where}.console_url",
                            f"must be https://HOST:PORT/, got {console_url!r}")
            _host_port(hostport, f"{where}.console_url")
        raw_replicas = data.get("replicas", [])
        if not isinstance(raw_replicas, list | tuple):  # a list in JSON, a tuple from to_dict
            raise _fail(f"{where}.replicas", f"must be a list, got {raw_replicas!r}")
        return cls(
            data_dir=_path(data, "data_dir", where),
            netns=_str(data, "netns", where, optional=True),
            address=address,
            gate=gate,
            broker=broker,
            console_url=console_url,
            log=_path(data, "log", where, optional=True),
            vpn=_vpn(data.get("vpn"), f"{where}.vpn"),
            database=_str(data, "database", where, optional=True),
            replicas=tuple(ServerResource.from_dict(r, f"{where}.replicas[{i}]")
                           for i, r in enumerate(raw_replicas)),
        )

    @property
    def gate_address(self) -> str:
        """HOST:PORT a terminal is told to use (gate default port 8443 when not given)."""
        return self.gate or f"{self.address}:8443"


@dataclass(frozen=True)
class TerminalResource:
    """Where one terminal is: its agent's state dir, its serial console, its namespace."""

    serial: str
    version: int
    state_dir: str
    netns: str | None
    console: str
    address: str | None = None
    display: str | None = None
    screenshot_dir: str | None = None
    hardware_dir: str | None = None
    slots_dir: str | None = None
    agent_log: str | None = None
    console_log: str | None = None
    display_log: str | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TerminalResource:
        if not isinstance(data, dict):
            raise _fail(where, f"must be an object, got {type(data).__name__}")
        _unknown_keys(data, cls, where)
        serial = _str(data, "serial", where)
        if len(serial) > 64 or not all(c.isalnum() or c in "._-" for c in serial):
            raise _fail(
                f"{where}.serial", f"may hold only letters, digits, '.', '_', '-': {serial!r}"
            )
        version = data.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise _fail(f"{where}.version", f"must be an integer YYYYMMDD, got {version!r}")
        if not 19700101 <= version <= 99991231 or not 1 <= version // 100 % 100 <= 12:
            raise _fail(f"{where}.version", f"is not a YYYYMMDD date: {version}")
        if "netns" not in data:
            raise _fail(f"{where}.netns", "is missing (null when the terminal is not in a netns)")
        address = _str(data, "address", where, optional=True)
        if address is not None:
            _host(address, f"{where}.address")
        display = _str(data, "display", where, optional=True)
        if display is not None and not (display.startswith(":") and display[1:].isdigit()):
            raise _fail(f"{where}.display", f"must look like ':N', got {display!r}")
        return cls(
            serial=serial,
            version=version,
            state_dir=_path(data, "state_dir", where),
            netns=_str(data, "netns", where, optional=True),
            console=_path(data, "console", where),
            address=address,
            display=display,
            screenshot_dir=_path(data, "screenshot_dir", where, optional=True),
            hardware_dir=_path(data, "hardware_dir", where, optional=True),
            slots_dir=_path(data, "slots_dir", where, optional=True),
            agent_log=_path(data, "agent_log", where, optional=True),
            console_log=_path(data, "console_log", where, optional=True),
            display_log=_path(data, "display_log", where, optional=True),
        )


@dataclass(frozen=True)
class RigFile:
    """The whole rig description."""

    server: ServerResource
    terminals: tuple[TerminalResource, ...]
    kind: str = "real"
    rig_id: str | None = None
    scenario: str | None = None
    supervisor: str | None = None
    isolation: str | None = None
    left_out: tuple[str, ...] = field(default_factory=tuple)
    logs_dir: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> RigFile:
        if not isinstance(data, dict):
            raise _fail("(top level)", f"must be an object, got {type(data).__name__}")
        _unknown_keys(data, cls, "(top level)")
        if "server" not in data:
            raise _fail("server", "is missing")
        server = ServerResource.from_dict(data["server"])
        raw_terminals = data.get("terminals")
        if not isinstance(raw_terminals, list) or not raw_terminals:
            raise _fail("terminals", f"must be a non-empty list, got {raw_terminals!r}")
        terminals = tuple(
            TerminalResource.from_dict(t, f"terminals[{i}]") for i, t in enumerate(raw_terminals)
        )
        seen: set[str] = set()
        for i, t in enumerate(terminals):
            if t.serial in seen:
                raise _fail(f"terminals[{i}].serial", f"{t.serial!r} appears twice")
            seen.add(t.serial)
        kind = data.get("kind", "real")
        if kind not in ("sim", "booted", "real"):
            raise _fail("kind", f"must be 'sim', 'booted' or 'real', got {kind!r}")
        scenario = data.get("scenario")
        if scenario not in (None, "A", "B"):
            raise _fail("scenario", f"must be 'A' or 'B', got {scenario!r}")
        isolation = data.get("isolation")
        if isolation not in (None, "netns", "loopback"):
            raise _fail("isolation", f"must be 'netns' or 'loopback', got {isolation!r}")
        left_out = data.get("left_out", [])
        if not isinstance(left_out, list) or not all(isinstance(x, str) for x in left_out):
            raise _fail("left_out", f"must be a list of strings, got {left_out!r}")
        return cls(
            server=server,
            terminals=terminals,
            kind=kind,
            rig_id=_str(data, "rig_id", "(top level)", optional=True),
            scenario=scenario,
            supervisor=_path(data, "supervisor", "(top level)", optional=True),
            isolation=isolation,
            left_out=tuple(left_out),
            logs_dir=_path(data, "logs_dir", "(top level)", optional=True),
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["terminals"] = [asdict(t) for t in self.terminals]
        data["left_out"] = list(self.left_out)
        return data

    def terminal(self, serial: str) -> TerminalResource:
        for t in self.terminals:
            if t.serial == serial:
                return t
        raise KeyError(f"no terminal {serial!r} in the rig (have: {self.serials()})")

    def serials(self) -> list[str]:
        return [t.serial for t in self.terminals]


def load_rig_file(path: Path | str) -> RigFile:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RigFileError(f"rig file {path}: cannot read it ({exc.strerror})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RigFileError(f"rig file {path}: not JSON ({exc})") from exc
    try:
        return RigFile.from_dict(data)
    except RigFileError as exc:
        raise RigFileError(f"{exc} (in {path})") from None


def write_rig_file(path: Path | str, rig: RigFile) -> None:
    """Write atomically: a reader sees no file or a whole one, never half of it."""
    path = Path(path)
    RigFile.from_dict(rig.to_dict())  # never write what we would refuse to load
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(rig.to_dict(), indent=2) + "\n")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
