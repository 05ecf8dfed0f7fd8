"""Scenario A on the rig (the VPN issue's must-shows): the master service only through WireGuard.

The tests share a `batm-sim up --scenario A` rig per pytest worker, reset to a never-paired
terminal before each test (real wireguard-go in the server's and the terminal's namespaces, real
Mosquitto; hil_tests/rig/sim_rigs.py), so the server has its endpoint on 192.0.2.1:51820
and every tunnel address is in 198.51.100.0/24. Outside CI a missing wireguard-go or nft skips
with the install command; with CI=true it fails.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wireguard_tools import WireguardConfig, WireguardKey

from hil_tests.rig.drivers.vpn import VpnDriver
from hil_tests.rig.prereqs import in_ci
from hil_tests.rig.sim_rigs import rig_target
from hil_tests.rig.strategies import PairingStrategy
from hil_tests.rig.target import Target
from hil_tests.rig.trace import StepTrace

TIMEOUT = 30.0


@pytest.fixture
def vpn_prerequisites(sim_prerequisites) -> None:
    missing = [name for name, package in (("wireguard-go", "wireguard-go"), ("nft", "nftables"))
               if shutil.which(name) is None and not os.path.exists(f"/usr/sbin/{name}")]
    if missing:
        message = f"scenario A needs {', '.join(missing)}: `apt-get install " + " ".join(
            {"wireguard-go": "wireguard-go", "nft": "nftables"}[m] for m in missing) + "`"
        if in_ci():
            pytest.fail(f"HIL prerequisite missing in CI: {message}", pytrace=False)
        pytest.skip(message)


@pytest.fixture
def rig_a(request: pytest.FixtureRequest, vpn_prerequisites, trace: StepTrace) -> Iterator[Target]:
    """A never-paired terminal on a scenario-A rig: this worker's shared one, or BATM_RIG's."""
    with rig_target(request, trace, "A") as target:
        if not target.rig.server.vpn:
            if os.environ.get("BATM_RIG"):
                pytest.skip("BATM_RIG is not a scenario A rig with a VPN endpoint")
            pytest.fail("a scenario A rig must provide the VPN endpoint in rig.json")
        yield target


def vpn_of(t: Target) -> VpnDriver:
    return VpnDriver(t.rig, t.terminal, t.trace)


def wait_until(condition, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} not within {timeout:g} s")
        time.sleep(0.05)
    return time.monotonic() - started


def assert_master_through_tunnel(t: Target, vpn: VpnDriver) -> str:
    """The broker saw this terminal's latest connection arrive from its tunnel address."""
    tunnel = vpn.generate()["tunnel_address"].split("/")[0]
    wait_until(lambda: vpn.broker_connections(), 5, "the broker's connection line")
    peer, client_id = vpn.broker_connections()[-1]
    assert (peer, client_id) == (tunnel, f"{t.serial}@vpn"), vpn.broker_connections()
    status = t.agent.status()["vpn"]
    assert status["state"] == "up" and status["tunnel_address"] == vpn.generate()[
        "tunnel_address"]
    assert status["handshake_age"] is not None and status["handshake_age"] < 60
    return tunnel


def test_never_and_previously_paired_reach_service_through_the_tunnel(rig_a: Target) -> None:
    t, vpn = rig_a, vpn_of(rig_a)
    # Never paired: the operator creates the terminal and generates its VPN configuration.
    PairingStrategy(t, scenario="A", timeout=TIMEOUT).transition("in_service")
    tunnel = assert_master_through_tunnel(t, vpn)
    view = vpn.generate()
    assert view["peer"] == "active" and view["latest_handshake"]
    key = WireguardKey((Path(t.terminal.state_dir) / "wg-private.key").read_text().strip())
    assert view["terminal_public_key"] == str(key.public_key())  # the key the terminal made
    # The wg-quick file: 0600, parseable by the standard tools' format, the server's key.
    conf = Path(t.terminal.state_dir) / "wg-batm.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    with conf.open() as fh:
        parsed = WireguardConfig.from_wgconfig(fh)
    assert [str(k) for k in parsed.peers] == [view["server_public_key"]]
    assert [str(a) for a in parsed.addresses] == [view["tunnel_address"]]
    assert_rig_listener_refuses(t)
    # Previously paired: the terminal lost its credentials; the server still knows it, and its
    # VPN configuration (the same tunnel address) still exists.
    t.power.wipe()
    t.agent.wait_for_screen("set_server", TIMEOUT)
    PairingStrategy(t, scenario="A", timeout=TIMEOUT).transition("in_service")
    assert assert_master_through_tunnel(t, vpn) == tunnel
    assert len(vpn.broker_connections()) >= 2


def assert_rig_listener_refuses(t: Target) -> None:
    """The master service is offered to scenario A only at the tunnel address: the broker's
    rig-side listener refuses the terminal's own credentials, whatever client id it sends."""
    credentials = Path(t.terminal.state_dir) / "mqtt-credentials.json"
    broker = getattr(t.rig.server, "broker", None) or f"{t.rig.server.address}:8883"
    host, port = broker.rsplit(":", 1)
    probe = [sys.executable, "-c", PROBE, str(credentials), host, port]
    if t.terminal.netns:
        probe = ["ip", "netns", "exec", t.terminal.netns, *probe]
    for client_id in (f"{t.serial}@vpn", t.serial):
        answer = subprocess.run([*probe, client_id], capture_output=True, text=True, timeout=30)
        assert answer.stdout.strip() == "Not authorized", (client_id, answer)
    assert t.agent.screen()["screen"] == "in_service"


PROBE = """
import json, ssl, sys, threading
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
path, host, port, cid = sys.argv[1:5]
cred = json.load(open(path))
done, result = threading.Event(), {}
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid)
c.username_pw_set(cred["username"], cred["password"])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
c.tls_set_context(ctx)
c.on_connect = lambda cl, u, f, rc, p: (result.update(rc=str(rc)), done.set())
c.connect(host, int(port), 5); c.loop_start(); done.wait(10); c.loop_stop()
print(result.get("rc", "no answer"))
"""


def test_approved_without_vpn_configuration_shows_vpn_error_then_recovers(
        rig_a: Target) -> None:
    t, vpn = rig_a, vpn_of(rig_a)
    t.server.create_terminal(t.serial, "A")  # the operator forgets "Generate VPN configuration"
    result = PairingStrategy(t, scenario="A", timeout=TIMEOUT).to_pairing_code()
    t.server.approve(t.serial, result.code)
    screen = t.agent.wait_for_screen("vpn_error", TIMEOUT)
    assert screen["title"] == "VPN connection error"
    assert "VPN configuration missing on the server" in screen["text"]
    assert f"batm-server terminal vpn {t.serial}" in screen["text"]
    assert t.server.terminal(t.serial)["state"] == "paired"
    # The operator fixes it on the server; nobody touches the terminal.
    started = time.monotonic()
    vpn.generate()
    t.agent.wait_for_screen("in_service", TIMEOUT)
    assert time.monotonic() - started < 15, "the terminal retries with a capped backoff"
    assert_master_through_tunnel(t, vpn)


def test_dropped_wireguard_port_shows_vpn_error_and_recovers(rig_a: Target) -> None:
    t, vpn = rig_a, vpn_of(rig_a)
    PairingStrategy(t, scenario="A", timeout=TIMEOUT).transition("in_service")
    window = float(vpn.info.get("health_window") or 180)
    with vpn.udp_dropped():
        assert vpn.rule_present()
        started = time.monotonic()
        screen = t.agent.wait_for_screen("vpn_error", window + 5)
        took = time.monotonic() - started
        assert took <= window, f"vpn_error after {took:.1f} s, health window {window:g} s"
        assert f"UDP port {vpn.port}" in screen["text"], screen
        time.sleep(1)  # still down while the rule holds
        assert t.agent.screen()["screen"] in ("vpn_error", "server_unreachable", "connecting")
    assert not vpn.rule_present()
    restored = time.monotonic()
    t.agent.wait_for_screen("in_service", TIMEOUT)
    assert time.monotonic() - restored < 10
    assert_master_through_tunnel(t, vpn)


def test_unpaired_key_can_no_longer_complete_a_handshake(rig_a: Target) -> None:
    t, vpn = rig_a, vpn_of(rig_a)
    PairingStrategy(t, scenario="A", timeout=TIMEOUT).transition("in_service")
    key_file = Path(t.terminal.state_dir) / "wg-private.key"
    old_key = Path(t.terminal.state_dir).parent / "old-wg.key"  # what a thief would copy
    old_key.write_text(key_file.read_text())
    old_key.chmod(0o600)
    tunnel = vpn.generate()["tunnel_address"]
    # Control: with the agent stopped (its wireguard-go goes with it) the same key handshakes.
    t.power.off()
    assert vpn.probe_handshake(old_key, tunnel)["handshake"] is True
    t.power.on()
    t.agent.wait_for_screen("in_service", TIMEOUT)
    t.server.unpair(t.serial)
    t.agent.wait_for_screen("pairing_code", TIMEOUT)
    view = vpn.generate()
    assert view["terminal_public_key"] is None and view["peer"] != "active"
    assert not key_file.exists(), "the terminal forgets a revoked key"
    assert vpn.probe_handshake(old_key, tunnel)["handshake"] is False
