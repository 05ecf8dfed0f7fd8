"""The rig network: namespaces and links exist, a terminal reaches 192.0.2.1, and teardown
leaves nothing named after the rig. Needs root (skipped outside CI, failed in CI without it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sim import netns
from sim.naming import SERVER_ADDRESS, RigNames, terminal_address
from sim.testsupport import require_binaries, require_root


@pytest.fixture
def network(tmp_path: Path):
    require_root()
    require_binaries("ip", "ping")
    names = RigNames.for_dir(tmp_path)
    net = netns.RigNetwork(names, terminals=2)
    try:
        net.up()
        yield net
    finally:
        netns.teardown(names)


def _links(ns: str) -> list[str]:
    out = netns.ip("-n", ns, "-o", "link", "show").stdout
    return [line.split(":", 2)[1].strip().split("@")[0] for line in out.splitlines()]


def _ping(ns: str, address: str) -> bool:
    proc = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", address],
                          capture_output=True, timeout=10)
    return proc.returncode == 0


def test_rig_network_up_reachable_and_torn_down(network: netns.RigNetwork) -> None:
    names = network.names
    assert set(network.namespaces()) <= set(netns.list_netns())
    assert names.bridge in _links(network.server_netns)
    for i in range(2):
        assert names.server_veth(i) in _links(network.server_netns)
        assert names.terminal_veth(i) in _links(network.terminal_netns(i))
        assert _ping(network.terminal_netns(i), SERVER_ADDRESS)
    assert _ping(network.terminal_netns(0), terminal_address(1))
    # Nothing of the rig sits in the root namespace.
    assert not [ln for ln in netns.list_root_links() if names.owns_name(ln)]

    # A process left running in a namespace does not keep it alive through teardown.
    straggler = subprocess.Popen(["ip", "netns", "exec", network.terminal_netns(0),
                                  "sleep", "300"])
    try:
        removed = netns.teardown(names)
        assert sorted(removed) == sorted(f"netns {ns}" for ns in network.namespaces())
        assert straggler.wait(5) is not None
    finally:
        if straggler.poll() is None:
            straggler.kill()
    assert netns.leftovers(names) == []
    assert netns.teardown(names) == []  # idempotent


def test_two_rigs_coexist(tmp_path: Path, network: netns.RigNetwork) -> None:
    other_names = RigNames.for_dir(tmp_path / "other")
    other = netns.RigNetwork(other_names, terminals=1)
    try:
        other.up()
        assert _ping(other.terminal_netns(0), SERVER_ADDRESS)
        assert _ping(network.terminal_netns(0), SERVER_ADDRESS)
        assert not set(other.namespaces()) & set(network.namespaces())
    finally:
        netns.teardown(other_names)
    assert netns.leftovers(other_names) == []
    assert set(network.namespaces()) <= set(netns.list_netns())


def test_failed_setup_removes_what_it_made(tmp_path: Path) -> None:
    require_root()
    require_binaries("ip")
    names = RigNames.for_dir(tmp_path)
    netns.ip("netns", "add", names.terminal_netns(1))  # in the way of the second terminal
    try:
        with pytest.raises(netns.NetworkError, match=names.terminal_netns(1)):
            netns.RigNetwork(names, terminals=2).up()
        assert netns.leftovers(names) == []
    finally:
        netns.teardown(names)
