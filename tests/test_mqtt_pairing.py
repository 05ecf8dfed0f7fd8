"""The pairing machine with the master service: in service means connected over MQTT."""

from agent.machine import state as pm
from agent.machine.dispatch import run
from batm_common.hostaddr import ServerAddress

SERVER = ServerAddress("192.0.2.1", 8443)



def started(has_credentials: bool):
    return run(pm.initial_state(uses_master=True), pm.Started(SERVER, True, has_credentials))


def test_check_in_without_credentials_obtains_them_then_connects():
    state, _ = started(False)
    gen = state.generation
    state, effects = run(state, pm.CheckedIn(gen))
    assert isinstance(state.phase, pm.ConnectingMaster)
    assert effects == [pm.WatchSession(gen), pm.ObtainMasterCredentials(gen)]
    state, effects = run(state, pm.MasterCredentialsIssued(gen))
    assert state.has_master_credentials and effects == [pm.ConnectMaster(gen)]
    state, effects = run(state, pm.MasterConnected(gen))
    assert isinstance(state.phase, pm.InService) and effects == []


def test_check_in_with_credentials_connects_at_once():
    state, _ = started(True)
    state, effects = run(state, pm.CheckedIn(state.generation))
    assert effects == [pm.WatchSession(state.generation), pm.ConnectMaster(state.generation)]


def test_started_unpaired_ignores_stale_credentials():
    state, _ = run(pm.initial_state(uses_master=True), pm.Started(SERVER, False, True))
    assert not state.has_master_credentials


def in_service():
    state, _ = started(True)
    state, _ = run(state, pm.CheckedIn(state.generation), pm.MasterConnected(state.generation))
    assert isinstance(state.phase, pm.InService)
    return state


def test_lost_link_shows_master_unreachable_and_retries_through_check_in():
    state = in_service()
    gen = state.generation
    state, effects = run(state, pm.MasterLost(gen, "connection lost"))
    assert state.phase == pm.Unreachable("master service unreachable: connection lost")
    assert effects == [pm.RetryLater(gen, 1)]
    state, effects = run(state, pm.RetryDue(gen))
    assert effects == [pm.CheckIn(state.generation)] and state.paired
    # A second loss before the first retry is not counted twice.
    _, effects = run(state, pm.MasterLost(gen, "late"))
    assert effects == []


def test_rejected_credentials_are_replaced_and_the_terminal_stays_paired():
    """Issue 13, item 6: one refused broker password used to make a paired terminal re-pair."""
    state = in_service()
    state, effects = run(state, pm.MasterRejected(state.generation, "not authorized"))
    assert state.paired and not state.has_master_credentials
    assert effects == [pm.DropMasterCredentials(), pm.RetryLater(state.generation, 1)]
    assert not any(isinstance(e, pm.StartPairing | pm.DropCredentials | pm.ConnectMaster)
                   for e in effects)
    state, effects = run(state, pm.RetryDue(state.generation))
    assert effects == [pm.CheckIn(state.generation)]  # signed with the identity key
    state, effects = run(state, pm.CheckedIn(state.generation))
    assert pm.ObtainMasterCredentials(state.generation) in effects and state.paired


def test_unpaired_while_connecting_to_master_drops_everything():
    state, _ = started(True)
    state, _ = run(state, pm.CheckedIn(state.generation))
    state, effects = run(state, pm.Unpaired(state.generation))
    assert not state.has_master_credentials
    assert effects == [pm.DropCredentials(), pm.StartPairing(state.generation)]


def test_session_watch_continues_while_connecting_to_master():
    state, _ = started(True)
    state, _ = run(state, pm.CheckedIn(state.generation))
    state, effects = run(state, pm.SessionAlive(state.generation))
    assert effects == [pm.WatchSession(state.generation)]


def test_late_link_events_of_an_older_generation_are_ignored():
    state = in_service()
    old = state.generation
    state, _ = run(state, pm.MasterLost(old, "x"), pm.RetryDue(old))
    after, effects = run(state, pm.MasterRejected(old, "late"))
    assert after == state and effects == []
