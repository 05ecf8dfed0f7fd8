"""The staged-upgrade transitions of the pairing machine (pure) and their screens."""

from __future__ import annotations

from agent.hardware import TerminalFacts
from agent.machine import state as pm
from agent.machine.dispatch import run, transition
from agent.screens import screen_model
from agent.upgrade import states as us
from agent.upgrade.offer import OfferError, UpgradeOffer, UpgradeWait, parse_upgrade_answer
from batm_common.hostaddr import parse_server_address

SERVER = parse_server_address("192.0.2.1:8443")
FACTS = TerminalFacts("SIM1", "rpi", 20190130)
OFFER = UpgradeOffer(20210315, "/api/v1/firmware/1/bundle", 5000, "a" * 64, 1, 2, "b" * 64)


def started() -> pm.AgentState:
    state, effects = transition(pm.initial_state(), pm.Started(SERVER, paired=False))
    assert effects == [pm.StartPairing(state.generation)]
    return state


def test_offer_unpaired_then_upgrading_then_restart() -> None:
    state = started()
    gen = state.generation
    state, effects = run(state, us.UpgradeOffered(gen, OFFER))
    assert isinstance(state.phase, us.TerminalUnpaired) and effects == [
        us.InstallUpgrade(gen, OFFER)]
    screen = screen_model(state, FACTS)
    assert (screen["screen"], screen["title"]) == ("terminal_unpaired", "Error: Terminal unpaired")
    state, _ = run(state, us.UpgradeProgress(gen, 40))
    screen = screen_model(state, FACTS)
    assert (screen["screen"], screen["step"], screen["steps"], screen["progress"]) == (
        "upgrading", 1, 2, 40)
    assert "Do not power off" in screen["text"]
    state, effects = run(state, us.UpgradeProgress(gen - 1, 90), us.UpgradeInstalled(gen))
    assert effects == [us.RestartIntoNewSlot(gen)]
    assert state.phase.progress == 100 and state.phase.restarting


def test_busy_waits_then_asks_again_and_failure_backs_off() -> None:
    state = started()
    gen = state.generation
    state, effects = run(state, us.UpgradeBusy(gen, 15, "upgrading 4 terminals already"))
    assert effects == [us.WaitForUpgrade(gen, 15)]
    assert screen_model(state, FACTS)["detail"] == "upgrading 4 terminals already"
    state, effects = run(state, pm.RetryDue(gen))
    assert effects == [pm.StartPairing(gen + 1)]
    gen += 1
    state, effects = run(state, us.UpgradeOffered(gen, OFFER), us.UpgradeFailed(gen, "tampered"))
    assert effects[-1] == pm.RetryLater(gen, 1)
    assert "tampered" in screen_model(state, FACTS)["detail"]
    assert screen_model(state, FACTS)["screen"] == "terminal_unpaired"


def test_trial_commits_on_the_first_answer_of_the_gate() -> None:
    state, effects = run(pm.initial_state(), us.UpgradeStartup(trying=True),
                         pm.Started(SERVER, paired=False))
    assert isinstance(effects[0], us.WatchTrial)
    gen = state.generation
    state, effects = run(state, pm.GateUnreachable(gen, "refused"))  # an error proves nothing
    assert state.trying_upgrade and not any(isinstance(e, us.CommitSlot) for e in effects)
    state, effects = run(state, pm.RetryDue(gen))
    gen = state.generation
    state, effects = run(state, us.UpgradeOffered(gen, OFFER))
    assert effects == [us.CommitSlot(gen), us.InstallUpgrade(gen, OFFER)]
    assert not state.trying_upgrade
    state, effects = run(state, us.TrialExpired())
    assert effects == []


def test_trial_expiry_rolls_back() -> None:
    state, _ = run(pm.initial_state(), us.UpgradeStartup(trying=True),
                   pm.Started(SERVER, paired=False))
    state, effects = run(state, us.TrialExpired())
    assert len(effects) == 1 and isinstance(effects[0], us.RollBackSlot)
    assert "did not reach the gate" in effects[0].reason


def test_parse_upgrade_answer() -> None:
    answer = {"status": "upgrade_required", "min_version": 20230801, "step": 1, "steps": 2,
              "next": {"version": 20210315, "url": "/api/v1/firmware/1/bundle", "size": 5000,
                       "sha256": "a" * 64}}
    assert parse_upgrade_answer(answer, "b" * 64) == OFFER
    wait = parse_upgrade_answer({"next": None, "retry_after": 15, "message": "busy"}, "")
    assert wait == UpgradeWait(15.0, "busy")
    for bad, field in (({"next": None}, "retry_after"),
                       (answer | {"next": answer["next"] | {"url": "http://evil/x"}}, "next.url"),
                       (answer | {"step": 3}, "step")):
        try:
            parse_upgrade_answer(bad, "")
        except OfferError as exc:
            assert field in str(exc)
        else:
            raise AssertionError(f"accepted {bad}")
