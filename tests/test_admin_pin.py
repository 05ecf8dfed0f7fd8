"""The admin PIN store: hashed, factory default must change, lockout persisted and growing."""

from __future__ import annotations

import json
import stat

import pytest

from agent.admin.pin import (
    FACTORY_PIN,
    MAX_FAILURES,
    PinError,
    PinFileDamaged,
    PinStore,
    check_new_pin,
    lockout_period,
)
from batm_common.quarantine import Replacement, take_reports

FAST = {"n": 2**4, "r": 8, "p": 1}  # real scrypt, cheap parameters


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def store(tmp_path, clock) -> PinStore:
    return PinStore(tmp_path, clock=clock, scrypt_params=FAST)


def fail(pins: PinStore, times: int) -> None:
    for _ in range(times):
        assert not pins.verify("999999").ok


def test_factory_pin_works_and_must_be_changed(tmp_path, clock):
    pins = store(tmp_path, clock)
    attempt = pins.verify(FACTORY_PIN)
    assert attempt.ok and attempt.must_change
    pins.change("482913", old_required=False)
    assert not pins.verify(FACTORY_PIN).ok
    attempt = pins.verify("482913")
    assert attempt.ok and not attempt.must_change


def test_pin_is_stored_hashed_in_a_private_file(tmp_path, clock):
    pins = store(tmp_path, clock)
    pins.change("482913", old_required=False)
    path = tmp_path / "admin-pin.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "482913" not in text
    record = json.loads(text)
    assert record["kdf"] == "scrypt" and len(bytes.fromhex(record["salt"])) == 16
    assert {"n", "r", "p", "hash"} <= record.keys()


def test_five_failures_lock_and_the_lock_grows_until_a_success(tmp_path, clock):
    pins = store(tmp_path, clock)
    fail(pins, MAX_FAILURES - 1)
    attempt = pins.verify("111111")
    assert not attempt.ok and attempt.locked_for == 30
    # While locked even the right PIN is refused (no oracle).
    assert pins.verify(FACTORY_PIN).locked_for == 30
    clock.now += 30
    assert pins.verify("121212").locked_for == 60  # the streak goes on: one more locks again
    clock.now += 60
    assert pins.verify("121212").locked_for == 120
    clock.now += 120
    assert pins.verify(FACTORY_PIN).ok  # the right PIN resets the streak
    fail(pins, MAX_FAILURES - 1)
    assert pins.verify("121212").locked_for == 30


def test_lockout_survives_a_restart_of_the_agent(tmp_path, clock):
    fail(store(tmp_path, clock), MAX_FAILURES)
    fresh = store(tmp_path, clock)
    assert fresh.locked_for() == 30
    assert not fresh.verify(FACTORY_PIN).ok


def test_tries_left_count_down(tmp_path, clock):
    pins = store(tmp_path, clock)
    assert [pins.verify("1").tries_left for _ in range(4)] == [4, 3, 2, 1]


def test_lockout_is_capped_at_an_hour():
    assert lockout_period(1) == 30 and lockout_period(2) == 60
    assert lockout_period(50) == 3600


def test_a_clock_set_back_does_not_stretch_the_lockout(tmp_path, clock):
    pins = store(tmp_path, clock)
    fail(pins, MAX_FAILURES)
    clock.now -= 10 * 365 * 86400  # no RTC: booted in the past, lock stored in the "future"
    assert pins.verify(FACTORY_PIN).locked_for == 30
    clock.now += 30
    assert pins.verify(FACTORY_PIN).ok


@pytest.mark.parametrize("pin, reason", [
    ("12345", "6 to 12 digits"), ("1234567890123", "6 to 12 digits"),
    ("12a456", "digits only"), ("１２３４５６", "digits only"), (FACTORY_PIN, "factory"),
    ("777777", "repeat one digit"), (123456, "text"),
])
def test_new_pin_rules(pin, reason):
    with pytest.raises(PinError, match=reason):
        check_new_pin(pin)


def test_change_needs_the_right_old_pin_and_counts_wrong_ones(tmp_path, clock):
    pins = store(tmp_path, clock)
    pins.change("482913", old_required=False)
    with pytest.raises(PinError, match="current PIN is wrong"):
        pins.change("192837", "000111")
    assert pins.verify("482913").ok
    pins.change("192837", "482913")
    assert pins.verify("192837").ok
    fail(pins, MAX_FAILURES - 1)
    with pytest.raises(PinError, match="locked"):
        pins.change("564738", "000111")


DAMAGED = [b"{", b"[]", b'{"kdf": "md5"}', b"\xff\xfe"]


@pytest.fixture(autouse=True)
def _no_reports_left_over():
    take_reports()  # quarantines from other tests in this process
    yield
    take_reports()


@pytest.mark.parametrize("content", DAMAGED)
def test_a_damaged_file_with_no_mirror_fails_closed_and_is_kept_for_a_post_mortem(
        tmp_path, clock, content):
    (tmp_path / "admin-pin.json").write_bytes(content)
    pins = store(tmp_path, clock)
    with pytest.raises(PinFileDamaged, match=r"admin-pin\.json.*delete"):
        pins.verify(FACTORY_PIN)  # the factory PIN does not open a damaged admin
    with pytest.raises(PinFileDamaged):
        pins.change("482913", old_required=False)
    [kept] = tmp_path.glob("admin-pin.json.corrupt-*")
    assert kept.read_bytes() == content  # nothing lost
    [report] = take_reports()
    assert report.moved_to == str(kept) and report.replacement == Replacement.REFUSED
    with pytest.raises(PinFileDamaged):  # sealed: still refused at the next start,
        store(tmp_path, clock).verify(FACTORY_PIN)
    assert take_reports() == []  # and not quarantined (nor reported) again


@pytest.mark.parametrize("content", DAMAGED)
def test_a_damaged_file_is_restored_from_its_mirror_with_pin_and_lockout(
        tmp_path, clock, content):
    pins = store(tmp_path, clock)
    pins.change("482913", old_required=False)
    fail(pins, 2)
    (tmp_path / "admin-pin.json").write_bytes(content)
    attempt = store(tmp_path, clock).verify("000111")
    assert not attempt.ok and attempt.tries_left == MAX_FAILURES - 3  # the count survived
    assert store(tmp_path, clock).verify("482913").ok
    [kept] = tmp_path.glob("admin-pin.json.corrupt-*")
    assert kept.read_bytes() == content
    [report] = take_reports()
    assert report.replacement == Replacement.RESTORED and "not a PIN record" in report.reason


def test_both_files_damaged_quarantines_both_and_fails_closed(tmp_path, clock):
    pins = store(tmp_path, clock)
    pins.change("482913", old_required=False)
    (tmp_path / "admin-pin.json").write_bytes(b"{")
    (tmp_path / "admin-pin.json.bak").write_bytes(b"[]")
    with pytest.raises(PinFileDamaged, match="mirror"):
        store(tmp_path, clock).verify("482913")
    assert len(take_reports()) == 2
    assert len(list(tmp_path.glob("admin-pin.json*.corrupt-*"))) == 2


def test_deleting_the_file_restores_the_factory_pin_not_the_mirror(tmp_path, clock):
    """The documented recovery (root deletes admin-pin.json) must not bring back the old PIN."""
    pins = store(tmp_path, clock)
    pins.change("482913", old_required=False)
    (tmp_path / "admin-pin.json").unlink()
    attempt = store(tmp_path, clock).verify(FACTORY_PIN)
    assert attempt.ok and attempt.must_change
