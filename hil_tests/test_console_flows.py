"""The seed flows with the operator in the console, in a real Chromium on the simulated rig:
B never paired, B previously paired, A never paired (create → generate VPN configuration → set
server on the kiosk → approve in the browser → in service), a wrong code refused on the page,
unpair from the row action menu → the kiosk shows its pairing code again.

Chromium runs in the server's namespace (sim/browser.py); without it these skip outside CI and
fail in CI.
"""

from __future__ import annotations

import pytest

from hil_tests.rig.drivers.console import ConsoleDriver
from hil_tests.rig.target import Target
from hil_tests.test_vpn import (  # noqa: F401 - fixtures
    assert_master_through_tunnel,
    rig_a,
    vpn_of,
    vpn_prerequisites,
)
from sim.browser import chromium_problem
from sim.testsupport import unavailable

TIMEOUT = 30.0
# The console's users and the broker's log outlive the rig's reset operations, and each flow
# reads them from the start: every flow gets a rig of its own.
pytestmark = pytest.mark.fresh_rig


def _console(t: Target, work_dir) -> ConsoleDriver:
    problem = chromium_problem()
    if problem:
        unavailable(problem)
    return ConsoleDriver(t.rig, t.server, work_dir, t.trace)


@pytest.fixture
def console(target: Target, tmp_path):
    driver = _console(target, tmp_path)
    yield driver
    driver.close()


@pytest.fixture
def console_a(rig_a: Target, tmp_path):  # noqa: F811 - the fixture imported above
    driver = _console(rig_a, tmp_path)
    yield driver
    driver.close()


def _wrong(code: str) -> str:
    return ("1" if code[0] != "1" else "2") + code[1:]


def test_b_never_paired_approved_in_the_browser_then_unpaired(target: Target,
                                                              console: ConsoleDriver) -> None:
    t = target
    console.create_terminal(t.serial, "B")
    t.console.set_server(t.gate)
    code = t.console.wait_for_screen("pairing_code", TIMEOUT)["pairing_code"]

    refused = console.approve(t.serial, _wrong(code))
    assert "does not match" in refused
    assert t.server.terminal(t.serial)["state"] == "pairing"

    assert "Approved" in console.approve(t.serial, code)
    t.console.wait_for_screen("in_service", TIMEOUT)

    assert "now shows a new pairing code" in console.unpair(t.serial)
    again = t.console.wait_for_screen("pairing_code", TIMEOUT)["pairing_code"]
    assert again != code, "a new exchange, a new code"


def test_b_previously_paired_approved_again_in_the_browser(target: Target, power,
                                                           console: ConsoleDriver) -> None:
    t = target
    console.create_terminal(t.serial, "B")
    t.console.set_server(t.gate)
    code = t.console.wait_for_screen("pairing_code", TIMEOUT)["pairing_code"]
    assert "Approved" in console.approve(t.serial, code)
    t.console.wait_for_screen("in_service", TIMEOUT)

    power.wipe()  # keys gone; the server still knows the terminal
    t.agent.wait_for_screen("set_server", TIMEOUT)
    t.console.set_server(t.gate)
    second = t.console.wait_for_screen("pairing_code", TIMEOUT)["pairing_code"]
    assert "Approved" in console.approve(t.serial, second)
    t.console.wait_for_screen("in_service", TIMEOUT)


def test_a_never_paired_with_the_vpn_configuration_from_the_browser(
        rig_a: Target, console_a: ConsoleDriver) -> None:  # noqa: F811
    t = rig_a
    vpn = vpn_of(t)  # reads the broker's log from here on: made before the terminal connects
    console_a.create_terminal(t.serial, "A")
    assert "VPN configuration generated" in console_a.generate_vpn(t.serial)
    t.console.set_server(t.gate)
    code = t.console.wait_for_screen("pairing_code", TIMEOUT)["pairing_code"]
    assert "Approved" in console_a.approve(t.serial, code)
    t.console.wait_for_screen("in_service", TIMEOUT)
    assert_master_through_tunnel(t, vpn)
