"""The pairing guide's full matrix (seed 001, architecture §2): 3 version classes × scenario A/B ×
never / previously paired = 12 cases.

Each case: the technician sets the server on the serial console; an old or archaic terminal shows
"Error: Terminal unpaired" and is upgraded by the gate (once / twice, restarting into each new
version), then every terminal shows its pairing code, the operator approves it, and it is in
service. Asserted: the screens passed through (a recorder on the control socket), the number of
upgrades (the agent's status, from the updater's record of committed upgrades), the version
the server finally sees (`batm-server terminal list --json`) and in_service.

"Previously paired" is what the guide means by it: the server already knows the terminal from an
earlier pairing, and the terminal holds no valid credentials. The case makes that history for
real: the terminal pairs once at its own version (an old terminal can only have been paired
while the server accepted its version, so the operator's policy is lowered for that and raised
back to 20230801), then its credentials are wiped (supervisor `wipe`).

Scenario A needs the rig's VPN (wireguard-go): a rig.json without one is a missing prerequisite,
which fails in CI and skips with the install hint elsewhere.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from hil_tests.rig.screen_recorder import ScreenRecorder, is_subsequence
from hil_tests.rig.seed_rig import CLASSES, MIN_VERSION, require_vpn
from hil_tests.rig.strategies import PairingStrategy
from hil_tests.rig.target import Target
from sim.prereqs import component_command

TIMEOUT = 30.0
UPGRADE_TIMEOUT = 90.0

def set_policy(t: Target, version: int) -> None:
    t.server._checked("firmware", "policy", "--min-pair-version", str(version))


def firmware(t: Target) -> dict:
    return t.agent.status()["firmware"]


@pytest.mark.parametrize("history", ["never", "previously"])
@pytest.mark.parametrize("scenario", ["A", "B"])
@pytest.mark.parametrize("klass", ["current", "old", "archaic"])
def test_seed_pairing(klass: str, scenario: str, history: str, seed_rig) -> None:
    version, upgrades = CLASSES[klass]
    if scenario == "A":
        require_vpn()  # a rig without one already answered: do not bring up another
    t = seed_rig(version, scenario)

    if history == "previously":
        set_policy(t, version)  # the server accepted this version when it was paired
        PairingStrategy(t, scenario=scenario, timeout=TIMEOUT).transition("in_service")
        t.power.wipe()  # the terminal loses its credentials; the server remembers it
        set_policy(t, MIN_VERSION)
        t.agent.wait_for_screen("set_server", TIMEOUT)
        assert t.server.terminal(t.serial)["state"] == "paired"
    else:
        t.server.create_terminal(t.serial, scenario)
        if scenario == "A":
            t.server.generate_vpn(t.serial)  # the guide: "Generate VPN configuration"

    with ScreenRecorder(t.terminal.state_dir) as recorder:
        t.console.set_server(t.gate)
        code = t.agent.wait_for_screen("pairing_code", UPGRADE_TIMEOUT)["pairing_code"]
        request = t.server.wait_for_pairing_request(t.serial, TIMEOUT)
        assert request["code"] == code and request["version"] == MIN_VERSION
        t.server.approve(t.serial, code)
        t.console.wait_for_screen("in_service", TIMEOUT)
    seen = recorder.ids()

    if upgrades:
        assert is_subsequence(["terminal_unpaired", "upgrading", "pairing_code", "in_service"],
                              seen), seen
        unpaired = recorder.of("terminal_unpaired")[0]
        assert unpaired["title"] == "Error: Terminal unpaired"
        first = recorder.of("upgrading")[0]
        assert (first["step"], first["steps"]) == (1, upgrades), first
        assert "Do not power off" in first["text"]
        assert {s["version"] for s in recorder.of("upgrading")} >= {version}
    else:
        assert "terminal_unpaired" not in seen and "upgrading" not in seen, seen
        assert is_subsequence(["pairing_code", "in_service"], seen), seen
    status = t.agent.status()
    assert status["firmware"]["upgrades"] == upgrades
    assert status["firmware"]["install_state"] in ("idle", "committed")
    assert status["version"] == MIN_VERSION and status["screen"] == "in_service"
    server_view = t.server.terminal(t.serial)
    assert (server_view["version"], server_view["state"]) == (MIN_VERSION, "paired")
    if t.terminal.slots_dir:
        done = subprocess.run([component_command("batm-firmware"), "status", "--json",
                               "--slots-dir", t.terminal.slots_dir],
                              capture_output=True, text=True, timeout=30)
        fw = json.loads(done.stdout)
        assert fw["slots"][fw["active"]]["version"] == MIN_VERSION
        assert fw["committed"] == fw["active"] and not fw["trying"]
