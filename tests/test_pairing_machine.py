"""The pure pairing state machine: every transition the seed's flows rely on."""

from agent.machine import state as pm
from agent.machine.dispatch import run
from agent.settings import ServerPin
from batm_common.hostaddr import ServerAddress

SERVER = ServerAddress("192.0.2.1", 8443)
OTHER = ServerAddress("198.51.100.7", 8443)
PIN = ServerPin(ca_pem="-----BEGIN CERTIFICATE-----\n...", spki_sha256="ab" * 32)



def test_fresh_terminal_asks_for_a_server():
    state, effects = run(pm.initial_state(), pm.Started(None, False))
    assert isinstance(state.phase, pm.NoServer)
    assert effects == []


def test_set_server_saves_it_before_starting_to_pair():
    state, effects = run(pm.initial_state(), pm.Started(None, False), pm.ServerSet(SERVER))
    assert isinstance(state.phase, pm.Connecting)
    assert effects == [pm.SaveServer(SERVER), pm.StartPairing(state.generation)]


def test_offer_shows_code_and_polls_until_approved_then_checks_in():
    state, _ = run(pm.initial_state(), pm.ServerSet(SERVER))
    gen = state.generation
    state, effects = run(state, pm.PairingOffered(gen, "r1", "ABCD-EFGH", PIN))
    assert state.phase == pm.AwaitingApproval("r1", "ABCD-EFGH", PIN)
    assert effects == [pm.PollApproval(gen, "r1", PIN)]
    state, effects = run(state, pm.ApprovalPending(gen))
    assert effects == [pm.PollApproval(gen, "r1", PIN)]
    state, effects = run(state, pm.Approved(gen))
    assert state.paired
    assert effects[0] == pm.SavePairing(PIN)  # persisted before anything acts on it
    assert effects[1] == pm.CheckIn(state.generation)
    state, effects = run(state, pm.CheckedIn(state.generation))
    assert isinstance(state.phase, pm.InService)
    assert effects == [pm.WatchSession(state.generation)]


def paired_in_service():
    state, _ = run(pm.initial_state(), pm.Started(SERVER, True))
    state, _ = run(state, pm.CheckedIn(state.generation))
    assert isinstance(state.phase, pm.InService)
    return state


def test_restart_with_credentials_checks_in_without_pairing():
    state, effects = run(pm.initial_state(), pm.Started(SERVER, True))
    assert effects == [pm.CheckIn(state.generation)]


def test_unpair_drops_credentials_and_pairs_again():
    state = paired_in_service()
    state, effects = run(state, pm.Unpaired(state.generation))
    assert not state.paired
    assert effects == [pm.DropCredentials(), pm.StartPairing(state.generation)]


def test_answers_from_an_older_generation_are_ignored():
    state, _ = run(pm.initial_state(), pm.ServerSet(SERVER))
    stale = state.generation
    state, _ = run(state, pm.ServerSet(OTHER))
    after, effects = run(state, pm.PairingOffered(stale, "old", "AAAA-AAAA", PIN))
    assert after == state and effects == []


def test_unreachable_retries_with_growing_attempts_and_recovers():
    state = paired_in_service()
    gen = state.generation
    state, effects = run(state, pm.GateUnreachable(gen, "connection refused"))
    assert state.phase == pm.Unreachable("connection refused")
    assert effects == [pm.RetryLater(gen, 1)]
    state, effects = run(state, pm.RetryDue(gen))
    assert effects == [pm.CheckIn(state.generation)] and state.paired
    state, effects = run(state, pm.GateUnreachable(state.generation, "connection refused"))
    assert effects == [pm.RetryLater(state.generation, 2)]
    state, _ = run(state, pm.RetryDue(state.generation), pm.CheckedIn(state.generation + 1))
    assert isinstance(state.phase, pm.InService) and state.failures == 0


def test_unknown_terminal_keeps_retrying():
    state, _ = run(pm.initial_state(), pm.ServerSet(SERVER))
    state, effects = run(state, pm.TerminalUnknown(state.generation))
    assert isinstance(state.phase, pm.UnknownTerminal)
    assert effects == [pm.RetryLater(state.generation, 1)]
    state, effects = run(state, pm.RetryDue(state.generation))
    assert effects == [pm.StartPairing(state.generation)]


def test_key_mismatch_is_shown_and_never_silently_repaired():
    state = paired_in_service()
    state, effects = run(state, pm.ServerKeyMismatch(state.generation, "key changed"))
    assert isinstance(state.phase, pm.CertificateMismatch)
    assert state.paired  # credentials kept: only the technician may decide to re-pair
    assert not any(isinstance(e, pm.StartPairing | pm.DropCredentials) for e in effects)
    state, effects = run(state, pm.RetryDue(state.generation))
    assert effects == [pm.CheckIn(state.generation)]


def test_setting_the_same_server_again_after_mismatch_re_pairs():
    state = paired_in_service()
    state, _ = run(state, pm.ServerKeyMismatch(state.generation, "key changed"))
    state, effects = run(state, pm.ServerSet(SERVER))
    assert not state.paired
    assert pm.DropCredentials() in effects and pm.StartPairing(state.generation) in effects


def test_setting_the_same_server_while_paired_keeps_credentials():
    state = paired_in_service()
    state, effects = run(state, pm.ServerSet(SERVER))
    assert state.paired and effects == [pm.CheckIn(state.generation)]


def test_server_change_drops_credentials():
    state = paired_in_service()
    state, effects = run(state, pm.ServerSet(OTHER))
    assert state.server == OTHER and not state.paired
    expected = [pm.SaveServer(OTHER), pm.DropCredentials(), pm.StartPairing(state.generation)]
    assert effects == expected


def test_expired_request_starts_a_new_hello():
    state, _ = run(pm.initial_state(), pm.ServerSet(SERVER))
    state, _ = run(state, pm.PairingOffered(state.generation, "r1", "ABCD-EFGH", PIN))
    state, effects = run(state, pm.PairingRequestGone(state.generation))
    assert isinstance(state.phase, pm.Connecting)
    assert effects == [pm.StartPairing(state.generation)]


def test_checkin_refused_as_not_paired_goes_back_to_pairing():
    state, _ = run(pm.initial_state(), pm.Started(SERVER, True))
    state, effects = run(state, pm.Unpaired(state.generation))
    assert not state.paired
    assert effects == [pm.DropCredentials(), pm.StartPairing(state.generation)]
