"""Pairing in scenario B with a current-version terminal (architecture §2), on the rig.

Every wait is a wait-for-condition (console `wait`, `batm-agent wait`, polling the server's
request list), never a fixed sleep.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from hil_tests.rig.drivers import TlsProxyDriver
from hil_tests.rig.strategies import PairingStrategy
from hil_tests.rig.target import Target
from sim.naming import PROXY_PORT
from sim.readiness import free_port

CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")
TIMEOUT = 30.0


def _other_code(code: str) -> str:
    """A well-formed code that is not `code`."""
    first = "1" if code[0] != "1" else "2"
    return first + code[1:]


def test_never_paired_terminal_pairs(target: Target) -> None:
    t = target
    t.server.create_terminal(t.serial, "B")
    assert t.console.screen()["screen"] == "set_server"

    t.console.set_server(t.gate)
    code = t.console.wait_for_screen("pairing_code", TIMEOUT)["pairing_code"]
    assert CODE.match(code), code
    request = t.server.wait_for_pairing_request(t.serial, TIMEOUT)
    assert request["code"] == code

    t.server.approve(t.serial, code)
    t.console.wait_for_screen("in_service", TIMEOUT)
    assert t.agent.status()["paired"] is True
    assert t.server.terminal(t.serial)["state"] == "paired"
    assert not [r for r in t.server.pairing_requests() if r["serial"] == t.serial]
    if t.terminal.display and t.terminal.screenshot_dir:
        shots = Path(t.terminal.screenshot_dir)
        for screen_id in ("set_server", "connecting", "pairing_code", "in_service"):
            wait_for_file(shots, f"[0-9][0-9][0-9]-{screen_id}.png")


def wait_for_file(directory: Path, pattern: str, timeout: float = 10.0) -> Path:
    """The display saves a screenshot shortly after each screen change."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(directory.glob(pattern))
        if found:
            return found[-1]
        time.sleep(0.1)
    present = sorted(p.name for p in directory.glob("*.png"))
    raise AssertionError(f"no screenshot {pattern} in {directory} (have {present})")


def test_previously_paired_terminal_pairs_again_after_wipe(target: Target, power) -> None:
    t = target
    strategy = PairingStrategy(t, timeout=TIMEOUT)
    first = strategy.transition("in_service")

    power.wipe()  # keys and credentials gone; the server still knows the terminal
    assert t.agent.status()["paired"] is False
    t.agent.wait_for_screen("set_server", TIMEOUT)

    second = strategy.to_pairing_code(previous_request=first.request_id)
    assert second.request_id != first.request_id
    assert second.code == second.server_code
    t.server.approve(t.serial, second.code)
    t.console.wait_for_screen("in_service", TIMEOUT)
    assert t.server.terminal(t.serial)["state"] == "paired"


def test_agent_restart_keeps_pairing(target: Target, power) -> None:
    t = target
    PairingStrategy(t, timeout=TIMEOUT).transition("in_service")
    before = t.agent.status()
    paired_at = t.server.terminal(t.serial)["paired_at"]

    power.cycle()
    t.agent.wait_for_screen("in_service", TIMEOUT)
    after = t.agent.status()
    assert after["pid"] != before["pid"], "the agent was not restarted"
    assert after["paired"] is True
    assert after["server_key_fingerprint"] == before["server_key_fingerprint"]
    assert not [r for r in t.server.pairing_requests() if r["serial"] == t.serial]
    assert t.server.terminal(t.serial)["paired_at"] == paired_at


@pytest.mark.parametrize("offset", [2 * 3600, -400 * 86400], ids=["+2h", "-400d"])
def test_a_wrong_clock_keeps_pairing(target: Target, power, offset: int) -> None:
    """Issue 13, item 6: a Pi has no RTC; its clock may be hours or years off at boot."""
    t = target
    PairingStrategy(t, timeout=TIMEOUT).transition("in_service")
    paired_at = t.server.terminal(t.serial)["paired_at"]
    power.cycle_with_clock_offset(offset)
    t.agent.wait_for_screen("in_service", TIMEOUT)
    assert t.agent.status()["paired"] is True
    assert not [r for r in t.server.pairing_requests() if r["serial"] == t.serial]
    assert t.server.terminal(t.serial)["paired_at"] == paired_at
    power.cycle_with_clock_offset(0)  # the next test's terminal keeps a true clock


def test_agent_power_cut_keeps_pairing(target: Target, power) -> None:
    t = target
    PairingStrategy(t, timeout=TIMEOUT).transition("in_service")
    power.cut()
    power.on()
    t.console.wait_for_screen("in_service", TIMEOUT)
    assert not [r for r in t.server.pairing_requests() if r["serial"] == t.serial]


def test_unknown_serial_shows_unknown_terminal(target: Target) -> None:
    t = target
    assert t.server.terminal(t.serial) is None
    t.console.set_server(t.gate)
    t.console.wait_for_screen("unknown_terminal", TIMEOUT)
    assert not [r for r in t.server.pairing_requests() if r["serial"] == t.serial]


def test_server_stopped_then_back(target: Target, power) -> None:
    t = target
    PairingStrategy(t, timeout=TIMEOUT).transition("in_service")
    power.stop_server()
    t.console.wait_for_screen("server_unreachable", TIMEOUT)
    power.start_server()
    t.console.wait_for_screen("in_service", TIMEOUT)
    assert not [r for r in t.server.pairing_requests() if r["serial"] == t.serial]


def test_wrong_code_is_refused(target: Target) -> None:
    t = target
    result = PairingStrategy(t, timeout=TIMEOUT).transition("pairing_code")

    refused = t.server.try_approve(t.serial, _other_code(result.code))
    assert refused.returncode != 0
    message = (refused.stderr + refused.stdout).strip()
    assert message and "Traceback" not in message
    assert "code" in message.lower()

    assert t.console.screen()["screen"] == "pairing_code"
    assert t.server.terminal(t.serial)["state"] != "paired"
    still = t.server.wait_for_pairing_request(t.serial, TIMEOUT)
    assert still["request_id"] == result.request_id and still["code"] == result.code


@pytest.fixture
def interceptor(target: Target, tmp_path: Path):
    if target.rig.kind != "sim":
        pytest.skip("the interceptor runs beside the simulated rig's server")
    port = PROXY_PORT if target.rig.server.netns else free_port()
    proxy = TlsProxyDriver(target.rig.server, tmp_path / "proxy-certs", port, target.trace)
    yield proxy
    proxy.stop()


def test_tls_interceptor_makes_codes_differ(target: Target, interceptor: TlsProxyDriver) -> None:
    t = target
    t.server.create_terminal(t.serial, "B")
    t.console.set_server(interceptor.start(mode="rewrite-ca"))

    terminal_code = t.console.wait_for_screen("pairing_code", TIMEOUT)["pairing_code"]
    request = t.server.wait_for_pairing_request(t.serial, TIMEOUT)
    assert CODE.match(request["code"]) and CODE.match(terminal_code)
    assert terminal_code != request["code"], "the interceptor went unnoticed"

    # The operator, comparing codes, refuses; approving with the terminal's code fails too.
    refused = t.server.try_approve(t.serial, terminal_code)
    assert refused.returncode != 0
    assert t.console.screen()["screen"] == "pairing_code"


def test_tls_relay_without_ca_rewrite_is_a_certificate_mismatch(
    target: Target, interceptor: TlsProxyDriver
) -> None:
    t = target
    t.server.create_terminal(t.serial, "B")
    t.console.set_server(interceptor.start(mode="relay"))
    t.console.wait_for_screen("certificate_mismatch", TIMEOUT)
    assert not [r for r in t.server.pairing_requests() if r["serial"] == t.serial and r["code"]]


def test_unpair_sends_the_terminal_back_to_pairing(target: Target) -> None:
    t = target
    first = PairingStrategy(t, timeout=TIMEOUT).transition("in_service")
    t.server.unpair(t.serial)
    screen = t.console.wait_for_screen("pairing_code", TIMEOUT)
    assert t.agent.status()["paired"] is False
    request = t.server.wait_for_pairing_request(t.serial, TIMEOUT, not_request=first.request_id)
    assert request["code"] == screen["pairing_code"]
    t.server.approve(t.serial, request["code"])
    t.console.wait_for_screen("in_service", TIMEOUT)
