"""The console's users and their credentials: made on the command line only, argon2id passwords,
TOTP for whoever may act (each code once), tokens acting as their user, growing lockouts."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest

from server.console import totp
from server.console.lockouts import FREE_FAILURES, Lockouts, account_key, lockout_for
from server.console.permissions import Action, Role
from server.console.tokens import Tokens
from server.console.users import Users
from server.db.console import ConsoleUser
from server.db.engine import open_database
from server.errors import ServiceError

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One database with an operator of L1 and a viewer of every location (hashing is slow)."""
    sessions = open_database(tmp_path_factory.mktemp("console"))
    clock = Clock()
    users = Users(sessions, clock)
    operator = users.add("olga", "operator", ["L1"], PASSWORD)
    viewer = users.add("vic", "viewer", None, PASSWORD)
    return sessions, clock, users, operator, viewer


def test_operators_enrol_totp_and_viewers_need_none(made):
    _, _, users, operator, viewer = made
    assert operator["totp_uri"].startswith("otpauth://totp/BATM%20console:olga?secret=")
    assert viewer == {"name": "vic", "totp_uri": None}
    assert users.needs_totp("olga") and not users.needs_totp("vic")


def test_passwords_are_argon2id_and_checked(made):
    sessions, _, users, _, _ = made
    with sessions() as session:
        assert session.get(ConsoleUser, "olga").password_hash.startswith("$argon2id$")
    assert users.check_password("olga", PASSWORD)
    assert not users.check_password("olga", PASSWORD + "!")
    assert not users.check_password("nobody", PASSWORD)


def test_a_short_password_or_a_bad_name_is_refused(made):
    _, _, users, _, _ = made
    with pytest.raises(ServiceError, match="shorter than 12") as short:
        users.add("x", "viewer", None, "short")
    assert short.value.status == 400
    with pytest.raises(ServiceError, match="may hold only"):
        users.add("bad name", "viewer", None, PASSWORD)
    with pytest.raises(ServiceError, match="already exists"):
        users.add("olga", "viewer", None, PASSWORD)


def test_a_totp_code_works_once_and_only_near_its_time(made):
    sessions, clock, users, _, _ = made
    with sessions() as session:
        secret = session.get(ConsoleUser, "olga").totp_secret
    code = totp.code_at(secret, clock.now)
    assert not users.check_totp("olga", "000000" if code != "000000" else "111111")
    assert users.check_totp("olga", code)
    assert not users.check_totp("olga", code), "a code is used up once accepted"
    clock.now += datetime.timedelta(minutes=5)
    assert not users.check_totp("olga", totp.code_at(secret, clock.now - datetime.timedelta(
        minutes=2))), "a code from two minutes ago is too old"
    assert users.check_totp("olga", totp.code_at(secret, clock.now))


def test_principal_carries_role_and_locations(made):
    _, _, users, _, _ = made
    olga = users.principal("olga")
    assert olga.role == Role.OPERATOR and olga.locations == frozenset({"L1"})
    assert olga.sees("L1") and not olga.sees("L2") and not olga.sees(None)
    vic = users.principal("vic")
    assert vic.sees("L2") and vic.sees(None)
    assert olga.may(Action.APPROVE) and not vic.may(Action.APPROVE)
    with pytest.raises(ServiceError, match="a viewer may not approve") as refused:
        vic.require(Action.APPROVE)
    assert refused.value.status == 403


def test_a_token_acts_as_its_user_until_the_user_is_disabled(made):
    sessions, clock, users, _, _ = made
    users.add("temp", "operator", ["L9"], PASSWORD)
    tokens = Tokens(sessions, clock)
    token = tokens.create("temp")
    assert token.startswith("batm_")
    assert tokens.principal(token).name == "temp"
    assert tokens.principal(token + "x") is None
    users.set_locations("temp", None)
    assert tokens.principal(token).locations is None, "a change applies at once"
    users.disable("temp")
    assert tokens.principal(token) is None
    assert users.principal("temp") is None
    with pytest.raises(ServiceError, match="is disabled"):
        tokens.create("temp")


def test_lockouts_grow_after_a_few_failures(made):
    sessions, clock, _, _, _ = made
    lockouts = Lockouts(sessions, clock)
    key = account_key("someone")
    for _ in range(FREE_FAILURES - 1):
        lockouts.fail([key])
        lockouts.check([key])  # typos are free
    lockouts.fail([key])
    with pytest.raises(ServiceError, match="try again in 30 seconds") as locked:
        lockouts.check([key])
    assert locked.value.status == 429
    clock.now += datetime.timedelta(seconds=31)
    lockouts.check([key])
    lockouts.fail([key])
    with pytest.raises(ServiceError, match="try again in 60 seconds"):
        lockouts.check([key])
    assert lockout_for(100) == datetime.timedelta(hours=1)
    lockouts.succeed(key)
    lockouts.check([key])


# ---------------------------------------------------------------- the command line


def cli(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", "--data-dir", str(data_dir),
                           *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_user_and_token_commands(tmp_path):
    added = cli(tmp_path, "user", "add", "ann", "--role", "admin", "--all-locations",
                "--password-stdin", "--json", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    made = json.loads(added.stdout)
    assert made["name"] == "ann" and made["totp_uri"].startswith("otpauth://totp/")
    assert cli(tmp_path, "user", "add", "ben", "--role", "viewer", "--locations", "L2, L1",
               "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    listed = json.loads(cli(tmp_path, "user", "list", "--json").stdout)
    assert [(u["name"], u["role"], u["locations"]) for u in listed] == [
        ("ann", "admin", None), ("ben", "viewer", ["L1", "L2"])]
    moved = cli(tmp_path, "user", "locations", "ben", "--locations", "L3")
    assert moved.stdout.strip() == "ben works on L3"
    token = cli(tmp_path, "token", "create", "ann", "--json")
    assert json.loads(token.stdout)["token"].startswith("batm_")
    assert cli(tmp_path, "user", "passwd", "ben", "--password-stdin",
               stdin="another long password\n").returncode == 0
    assert cli(tmp_path, "user", "disable", "ben").returncode == 0


def test_user_commands_refuse_with_one_line(tmp_path):
    weak = cli(tmp_path, "user", "add", "ann", "--role", "operator", "--all-locations",
               "--password-stdin", stdin="short\n")
    assert weak.returncode == 1
    assert weak.stderr.strip() == ("batm-server: error: the password is shorter than 12 "
                                   "characters")
    nobody = cli(tmp_path, "token", "create", "nobody")
    assert nobody.returncode == 1 and "no console user named 'nobody'" in nobody.stderr
    usage = cli(tmp_path, "user", "add", "ann", "--role", "operator", "--password-stdin")
    assert usage.returncode == 2, "a user's locations must be given"
