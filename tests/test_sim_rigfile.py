"""rig.json validation: a bad rig file fails at load time with a message naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from sim.rigfile import RigFile, RigFileError, load_rig_file, write_rig_file

GOOD = {
    "server": {"data_dir": "/rig/server", "netns": "batm-abc123-srv", "address": "192.0.2.1",
               "gate": "192.0.2.1:8443", "broker": "192.0.2.1:8883",
               "console_url": "https://192.0.2.1:8445/"},
    "terminals": [
        {"serial": "SIM00001", "version": 20230801, "state_dir": "/rig/SIM00001/state",
         "netns": "batm-abc123-t0", "console": "/rig/SIM00001/console",
         "address": "192.0.2.10", "display": ":3"},
        {"serial": "SIM00002", "version": 20190130, "state_dir": "/rig/SIM00002/state",
         "netns": None, "console": "/dev/ttyUSB0"},
    ],
    "kind": "sim",
    "supervisor": "/rig/sim.sock",
}


def _with(path: str, value, base: dict = GOOD) -> dict:
    data = copy.deepcopy(base)
    node = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


_DELETE = object()


def test_good_file_loads_and_round_trips(tmp_path: Path) -> None:
    rig = RigFile.from_dict(GOOD)
    assert rig.serials() == ["SIM00001", "SIM00002"]
    assert rig.terminal("SIM00002").netns is None
    assert rig.server.gate_address == "192.0.2.1:8443"
    assert rig.server.broker == "192.0.2.1:8883"
    path = tmp_path / "rig.json"
    write_rig_file(path, rig)
    assert load_rig_file(path) == rig
    assert not list(tmp_path.glob(".*tmp*")), "the atomic write left its temporary file"


def test_a_rig_with_two_replicas_on_postgresql_round_trips(tmp_path: Path) -> None:
    second = {"data_dir": "/rig/server-2", "netns": "batm-abc123-srv", "address": "192.0.2.1",
              "gate": "192.0.2.1:9443", "broker": "192.0.2.1:9883",
              "console_url": "https://192.0.2.1:9445/", "log": "/rig/logs/server-2.log"}
    data = _with("server.replicas", [second],
                 _with("server.database", "postgresql+psycopg://postgres@/batm?host=/tmp/x"))
    rig = RigFile.from_dict(data)
    [replica] = rig.server.replicas
    assert replica.gate_address == "192.0.2.1:9443" and replica.data_dir == "/rig/server-2"
    assert rig.server.database.startswith("postgresql+psycopg://")
    write_rig_file(tmp_path / "rig.json", rig)
    assert load_rig_file(tmp_path / "rig.json") == rig


def test_contract_fields_alone_are_enough() -> None:
    minimal = {
        "server": {"data_dir": "/srv/batm", "netns": None, "address": "pi-server.local"},
        "terminals": [{"serial": "BT1", "version": 20230801, "state_dir": "/var/lib/batm-agent",
                       "netns": None, "console": "/dev/ttyUSB0"}],
    }
    rig = RigFile.from_dict(minimal)
    assert rig.kind == "real" and rig.supervisor is None and rig.server.broker is None
    assert rig.server.gate_address == "pi-server.local:8443"


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("server", _DELETE, "server"),
        ("server.netns", _DELETE, "server.netns"),
        ("server.data_dir", "relative/dir", "server.data_dir"),
        ("server.address", "", "server.address"),
        ("server.address", "not an address!", "server.address"),
        ("server.gate", "192.0.2.1", "server.gate"),
        ("server.gate", "192.0.2.1:99999", "server.gate"),
        ("server.broker", "192.0.2.1", "server.broker"),
        ("server.broker", "192.0.2.1:0", "server.broker"),
        ("server.colour", "red", "server"),
        ("server.console_url", "http://192.0.2.1:8445/", "server.console_url"),
        ("server.console_url", "https://192.0.2.1/", "server.console_url"),
        ("server.console_url", "https://192.0.2.1:8445/login", "server.console_url"),
        ("terminals", [], "terminals"),
        ("terminals", "SIM00001", "terminals"),
        ("terminals.0", "SIM00001", "terminals[0]"),
        ("terminals.1.version", "20230801", "terminals[1].version"),
        ("terminals.1.version", 2023, "terminals[1].version"),
        ("terminals.1.version", 20231301, "terminals[1].version"),
        ("terminals.1.version", True, "terminals[1].version"),
        ("terminals.0.serial", "bad serial", "terminals[0].serial"),
        ("terminals.0.serial", None, "terminals[0].serial"),
        ("terminals.1.serial", "SIM00001", "terminals[1].serial"),
        ("terminals.0.console", _DELETE, "terminals[0].console"),
        ("terminals.0.state_dir", "state", "terminals[0].state_dir"),
        ("terminals.0.netns", _DELETE, "terminals[0].netns"),
        ("terminals.0.display", "3", "terminals[0].display"),
        ("terminals.0.statedir", "/x", "terminals[0]"),
        ("kind", "virtual", "kind"),
        ("scenario", "C", "scenario"),
        ("isolation", "vm", "isolation"),
        ("supervisor", "sim.sock", "supervisor"),
        ("left_out", "xvfb", "left_out"),
        ("server.replicas", "192.0.2.1:9443", "server.replicas"),
        ("server.replicas", [{"data_dir": "/rig/server-2", "netns": None,
                              "address": "192.0.2.1", "gate": "9443"}],
         "server.replicas[0].gate"),
        ("server.database", 5432, "server.database"),
    ],
)
def test_bad_field_is_named(path: str, value, named: str) -> None:
    with pytest.raises(RigFileError) as info:
        RigFile.from_dict(_with(path, value))
    assert f"{named}:" in str(info.value) or f"{named}." in str(info.value), str(info.value)


def test_unreadable_and_non_json_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(RigFileError, match="cannot read"):
        load_rig_file(tmp_path / "missing.json")
    bad = tmp_path / "rig.json"
    bad.write_text("{not json")
    with pytest.raises(RigFileError, match="not JSON"):
        load_rig_file(bad)
    bad.write_text(json.dumps(_with("terminals.0.version", "x")))
    with pytest.raises(RigFileError, match=r"terminals\[0\]\.version.*rig\.json"):
        load_rig_file(bad)


def test_unknown_terminal_lookup_lists_the_serials() -> None:
    rig = RigFile.from_dict(GOOD)
    with pytest.raises(KeyError, match="SIM00001"):
        rig.terminal("NOPE")
