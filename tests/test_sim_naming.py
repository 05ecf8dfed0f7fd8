"""Names of a rig: unique per rig directory, within Linux's 15-character interface names."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from sim.layout import DEFAULT_VERSION, TerminalSpec, parse_terminal_specs
from sim.naming import (
    IFNAME_MAX,
    MAX_TERMINALS,
    SERVER_NET,
    RigNames,
    rig_id,
    terminal_address,
)


def test_rig_id_is_stable_and_follows_the_real_path(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert rig_id(a) == rig_id(str(a)) == rig_id(a / ".")
    assert rig_id(a) != rig_id(b)
    link = tmp_path / "link"
    link.symlink_to(a)
    assert rig_id(link) == rig_id(a)
    assert len(rig_id(a)) == 6 and int(rig_id(a), 16) >= 0


def test_every_name_fits_ifnamsiz_and_carries_the_id() -> None:
    names = RigNames("0a1b2c")
    all_names = [names.server_netns, names.bridge]
    for i in range(MAX_TERMINALS):
        all_names += [names.terminal_netns(i), names.server_veth(i), names.terminal_veth(i)]
    assert len(set(all_names)) == len(all_names)
    for name in all_names:
        assert len(name) <= IFNAME_MAX, name
        assert "0a1b2c" in name
        assert names.owns_name(name)
    other = RigNames("ffffff")
    assert not any(other.owns_name(n) for n in all_names)
    assert not names.owns_name("eth0") and not names.owns_name("lo")


def test_terminal_addresses_are_in_the_documentation_range() -> None:
    assert terminal_address(0) == "192.0.2.10"
    assert terminal_address(MAX_TERMINALS - 1) == "192.0.2.108"
    for i in range(MAX_TERMINALS):
        assert ipaddress.ip_address(terminal_address(i)) in SERVER_NET
    with pytest.raises(ValueError, match="outside"):
        terminal_address(MAX_TERMINALS)
    with pytest.raises(ValueError):
        RigNames("0a1b2c").terminal_netns(-1)


def test_bad_rig_id_is_refused() -> None:
    with pytest.raises(ValueError, match="6 lowercase hex"):
        RigNames("XYZ")


def test_terminal_specs_defaults_and_lists() -> None:
    assert parse_terminal_specs(2, None, None) == [
        TerminalSpec("SIM00001", DEFAULT_VERSION), TerminalSpec("SIM00002", DEFAULT_VERSION)]
    assert [s.version for s in parse_terminal_specs(3, "20190130", None)] == [20190130] * 3
    specs = parse_terminal_specs(2, "20190101,20230801", "BT1,BT2")
    assert specs == [TerminalSpec("BT1", 20190101), TerminalSpec("BT2", 20230801)]


@pytest.mark.parametrize(
    ("count", "versions", "serials", "message"),
    [
        (0, None, None, "--terminals"),
        (100, None, None, "--terminals"),
        (3, "20190101,20230801", None, "--versions has 2"),
        (1, "2023-08-01", None, "YYYYMMDD"),
        (1, "20231301", None, "YYYYMMDD"),
        (2, None, "A", "--serials has 1"),
        (2, None, "A,A", "own serial"),
        (1, None, "bad/serial", "--serials"),
        (1, None, "logs", "uses itself"),
        (1, None, "..", "--serials"),
    ],
)
def test_terminal_specs_errors_name_the_option(count, versions, serials, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_terminal_specs(count, versions, serials)


def test_layout_files_are_what_the_agent_reads(tmp_path: Path) -> None:
    from agent.hardware import read_facts
    from sim.layout import Layout

    layout = Layout(tmp_path)
    spec = TerminalSpec("SIM00007", 20190130)
    layout.make_terminal_files(spec)
    facts = read_facts(layout.hardware_dir("SIM00007"), layout.slots_dir("SIM00007"))
    assert (facts.serial, facts.version) == ("SIM00007", 20190130)
    assert os.readlink(layout.slots_dir("SIM00007") / "active") == "a"
    layout.make_terminal_files(spec)  # idempotent
