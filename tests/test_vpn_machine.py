"""The VPN step of the pure pairing machine (scenario A) and its screens."""

from agent.hardware import TerminalFacts
from agent.machine import state as pm
from agent.machine.dispatch import run
from agent.screens import screen_model
from agent.vpn import states as vs
from batm_common.hostaddr import ServerAddress

SERVER = ServerAddress("192.0.2.1", 8443)
OTHER = ServerAddress("192.0.2.2", 8443)
FACTS = TerminalFacts(serial="SIM00001", model="test", version=20230801)



def checked_in_a(has_credentials=True):
    state, _ = run(pm.initial_state(uses_master=True),
                   pm.Started(SERVER, True, has_master_credentials=has_credentials))
    return run(state, pm.CheckedIn(state.generation, vpn=True))


def test_scenario_a_brings_up_the_vpn_before_the_master_service():
    state, effects = checked_in_a()
    gen = state.generation
    assert state.uses_vpn and isinstance(state.phase, pm.ConnectingMaster)
    assert effects == [pm.WatchSession(gen), vs.BringUpVpn(gen)]
    state, effects = run(state, vs.VpnUp(gen))
    assert effects == [pm.ConnectMaster(gen)]
    state, effects = run(state, pm.MasterConnected(gen))
    assert isinstance(state.phase, pm.InService) and effects == []


def test_credentials_come_first_then_the_vpn():
    state, effects = checked_in_a(has_credentials=False)
    gen = state.generation
    assert effects == [pm.WatchSession(gen), pm.ObtainMasterCredentials(gen)]
    state, effects = run(state, pm.MasterCredentialsIssued(gen))
    assert effects == [vs.BringUpVpn(gen)]


def test_scenario_b_connects_directly():
    state, _ = run(pm.initial_state(uses_master=True), pm.Started(SERVER, True, True))
    state, effects = run(state, pm.CheckedIn(state.generation))
    assert not state.uses_vpn
    assert effects == [pm.WatchSession(state.generation), pm.ConnectMaster(state.generation)]


def test_missing_configuration_shows_vpn_error_and_retries_with_backoff():
    state, _ = checked_in_a()
    gen = state.generation
    state, effects = run(state, vs.VpnConfigMissing(gen, "not generated"))
    assert state.phase == vs.VpnError(vs.MISSING, "not generated")
    assert effects == [pm.RetryLater(gen, 1)]
    screen = screen_model(state, FACTS)
    assert screen["screen"] == "vpn_error" and screen["title"] == "VPN connection error"
    assert "VPN configuration missing on the server" in screen["text"]
    assert "batm-server terminal vpn SIM00001" in screen["text"]
    # The retry checks in again; the error stays on the screen while it does.
    state, effects = run(state, pm.RetryDue(gen))
    assert isinstance(state.phase, pm.Connecting)
    assert effects == [pm.CheckIn(state.generation)]
    assert screen_model(state, FACTS)["screen"] == "vpn_error"
    state, _ = run(state, pm.CheckedIn(state.generation, vpn=True))
    assert screen_model(state, FACTS)["screen"] == "vpn_error"
    state, _ = run(state, vs.VpnConfigMissing(state.generation, "still not"))
    assert state.failures == 2  # the backoff grows
    state, _ = run(state, pm.RetryDue(state.generation), pm.CheckedIn(state.generation + 1,
                                                                       vpn=True))
    gen = state.generation
    state, _ = run(state, vs.VpnUp(gen), pm.MasterConnected(gen))
    assert isinstance(state.phase, pm.InService) and state.vpn_error is None
    assert state.failures == 0
    assert screen_model(state, FACTS)["screen"] == "in_service"


def test_tunnel_down_names_the_udp_port():
    state, _ = checked_in_a()
    gen = state.generation
    state, _ = run(state, vs.VpnDown(gen, vs.NO_HANDSHAKE, "no handshake in 5 s",
                                     "192.0.2.1:51820"))
    screen = screen_model(state, FACTS)
    assert screen["screen"] == "vpn_error"
    assert "VPN tunnel does not come up" in screen["text"]
    assert "UDP port 51820" in screen["text"] and "192.0.2.1:51820" in screen["text"]
    assert screen["detail"] == "no handshake in 5 s"


def test_health_monitor_takes_a_terminal_out_of_service():
    state, _ = checked_in_a()
    gen = state.generation
    state, _ = run(state, vs.VpnUp(gen), pm.MasterConnected(gen))
    state, effects = run(state, vs.VpnDown(gen, vs.UNHEALTHY, "no handshake for 200 s"))
    assert isinstance(state.phase, vs.VpnError)
    assert effects == [pm.RetryLater(gen, 1)]


def test_stale_vpn_answers_are_ignored():
    state, _ = checked_in_a()
    before = state
    state, effects = run(state, vs.VpnDown(state.generation - 1, vs.NO_HANDSHAKE, "old"))
    assert state == before and effects == []


def test_unpair_and_server_change_tear_the_tunnel_down():
    state, _ = checked_in_a()
    state, effects = run(state, pm.Unpaired(state.generation))
    assert not state.uses_vpn
    assert pm.DropCredentials() in effects and vs.TearDownVpn(state.generation) in effects
    state, _ = checked_in_a()
    state, effects = run(state, pm.ServerSet(OTHER))
    assert vs.TearDownVpn(state.generation) in effects and pm.SaveServer(OTHER) in effects


def test_a_terminal_moved_to_scenario_b_tears_the_tunnel_down():
    state, _ = checked_in_a()
    state, _ = run(state, pm.GateUnreachable(state.generation, "x"), pm.RetryDue(
        state.generation))
    state, effects = run(state, pm.CheckedIn(state.generation, vpn=False))
    assert vs.TearDownVpn(state.generation) in effects
    assert pm.ConnectMaster(state.generation) in effects
