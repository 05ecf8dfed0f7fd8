"""The status monitor on the simulated rig, in a real Chromium (issue 11's must-shows with a real
terminal): its row carries the version, last update and last sync the terminal reported over
MQTT; an old terminal is yellow while the gate upgrades it and not once it is done; retrieve
logs in the dialog → the archive downloads from the page and holds the agent's
log of that period; reset local database, confirmed → the terminal reports a fresh database on
the page; a power cut turns the row offline within 2 s without a reload; and `terminal list
--json` through the running server's admin socket carries the same fields and filters.

Chromium runs in the server's namespace (sim/browser.py); without it this skips outside CI and
fails in CI.
"""

from __future__ import annotations

import datetime
import io
import json
import re
import sqlite3
import tarfile
import time
from pathlib import Path

import pytest

from hil_tests.rig.drivers.console import ConsoleDriver
from hil_tests.rig.drivers.master import MasterDriver
from hil_tests.rig.seed_rig import CLASSES, MIN_VERSION
from hil_tests.rig.strategies import PairingStrategy
from hil_tests.rig.target import Target
from sim.browser import chromium_problem
from sim.testsupport import unavailable

TIMEOUT = 30.0
UPGRADE_TIMEOUT = 90.0
LIVE = 2.0  # seconds: the bound for a row to change without a reload


@pytest.fixture
def monitor(target: Target, tmp_path):
    problem = chromium_problem()
    if problem:
        unavailable(problem)
    PairingStrategy(target, timeout=TIMEOUT).transition("in_service")
    master = MasterDriver(target.rig, target.terminal, target.trace)
    master.wait_status(lambda s: s["online"] and s["screen"] == "in_service", TIMEOUT)
    driver = ConsoleDriver(target.rig, target.server, tmp_path, target.trace)
    yield driver, master
    driver.close()
    master.close()


def minute(delta: datetime.timedelta) -> str:
    """The dialog's datetime-local form, UTC."""
    return (datetime.datetime.now(datetime.UTC) + delta).strftime("%Y-%m-%dT%H:%M")


def test_the_monitor_on_the_rig_logs_reset_db_and_a_power_cut(target: Target, monitor) -> None:
    console, master = monitor
    t = target
    status = master.status()
    row = console.monitor_row(t.serial)
    assert row["Software version"].startswith(str(t.terminal.version))
    assert row["Online"] == "online" and row["class"] in ("", "yellow")
    assert row["Last update"] == status["last_update"] and row["Last sync"] != "never"
    assert row["Last sync error"] == ""

    # Retrieve logs: a line the agent writes now falls in the period asked for.
    t.agent.run("event", "monitor.logs")
    archive = console.retrieve_logs(t.serial, minute(datetime.timedelta(minutes=-10)),
                                    minute(datetime.timedelta(minutes=5)), max_kb=64)
    assert 0 < len(archive) <= 64 * 1024
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        log = tar.extractfile("agent.log").read().decode()
        readme = tar.extractfile("README.txt").read().decode()
    assert f"terminal {t.serial}" in readme and "max_size 65536" in readme
    assert log.strip(), "the agent's own log of the period"
    stamps = re.findall(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})", log, re.M)
    earliest = minute(datetime.timedelta(minutes=-11))
    assert stamps and min(stamps) >= earliest, "nothing from before the period"

    # Reset local database: the page shows the fresh database's own creation time.
    pid = t.agent.status()["pid"]
    issued = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    result = console.reset_db(t.serial)
    assert "done" in result and "fresh local database created" in result, result
    created = re.search(r"created (\S+)", result).group(1)
    assert created[:19] >= issued[:19], (created, issued)
    assert t.agent.status()["pid"] == pid, "the agent went on, only its database is new"

    # The running server's admin socket: the same fields and the seed's filters.
    listing = json.loads(t.server.run("terminal", "list", "--json").stdout)
    mine = next(x for x in listing if x["serial"] == t.serial)
    assert mine["highlight"] in (None, "yellow") and mine["last_update"] == status["last_update"]
    synced_hidden = json.loads(t.server.run("terminal", "list", "--json",
                                            "--hide-synced").stdout)
    assert t.serial not in [x["serial"] for x in synced_hidden]

    # A power cut: the broker's last will, and the open page's row says offline by itself.
    console.monitor_row(t.serial)
    t.power.cut()
    try:
        master.wait_status(lambda s: not s["online"], TIMEOUT)
        known = time.monotonic()  # the server knows: from here the page has LIVE seconds
        took = console.seconds_until_row(t.serial, " td.offline", known)
    finally:
        t.power.on()
    assert took < LIVE, f"the row said offline {took:.1f} s after the server knew"
    master.wait_status(lambda s: s["online"] and s["screen"] == "in_service", TIMEOUT)


def test_a_terminal_whose_sync_fails_turns_red_with_the_error_until_its_db_is_reset(
        target: Target, monitor) -> None:
    """A torn row in the terminal's outbox, found after a power cut: the server refuses that
    event and never acknowledges it, the terminal reports the failed sync, and the open page's
    row turns red with the error text by itself. Reset local database ends it."""
    console, master = monitor
    t = target
    console.monitor_row(t.serial)  # the page stays open from here: no reload below
    t.power.cut()
    try:
        with sqlite3.connect(Path(t.terminal.state_dir) / "local.db") as db:
            db.execute("INSERT INTO outbox (id, body) VALUES (?, ?)",
                       ("torn-row-1", b'{"id": "torn-row-1", "type": 7, "at": null}'))
    finally:
        t.power.on()
    master.wait_status(lambda s: s["online"] and bool(s["last_sync_error"]), TIMEOUT)
    known = time.monotonic()
    took = console.seconds_until_row(t.serial, ".red", known)
    assert took < LIVE, f"the row turned red {took:.1f} s after the server knew"
    row = console.monitor_row(t.serial)
    assert row["class"] == "red"
    assert "did not acknowledge 1 event" in row["Last sync error"], row
    reds = json.loads(t.server.run("terminal", "list", "--json", "--highlight", "red").stdout)
    assert [x["serial"] for x in reds] == [t.serial]

    result = console.reset_db(t.serial)
    assert "done" in result and "1 pending event(s) dropped" in result, result  # the torn row
    master.wait_status(lambda s: not s["last_sync_error"] and s["outbox_pending"] == 0, TIMEOUT)
    row = console.monitor_row(t.serial)
    assert row["class"] != "red" and row["Last sync error"] == ""


def test_an_old_terminal_is_yellow_until_its_upgrade_finishes(seed_rig, tmp_path) -> None:
    """Seed 001's old terminal (one upgrade step): yellow on the monitor while the gate upgrades
    it — before it could even pair — and no longer once it runs the minimum version."""
    problem = chromium_problem()
    if problem:
        unavailable(problem)
    old, _steps = CLASSES["old"]
    t = seed_rig(old, "B")
    t.server.create_terminal(t.serial, "B")
    console = ConsoleDriver(t.rig, t.server, tmp_path, t.trace)
    try:
        t.console.set_server(t.gate)
        t.agent.wait_for_screen("upgrading", UPGRADE_TIMEOUT)
        row = console.monitor_row(t.serial)
        assert row["class"] == "yellow" and row["Software version"].startswith(str(old)), row
        code = t.agent.wait_for_screen("pairing_code", UPGRADE_TIMEOUT)["pairing_code"]
        took = console.seconds_until_row(t.serial, ":not(.yellow)", time.monotonic())
        assert took < LIVE, f"still yellow {took:.1f} s after the upgrade finished"
        assert "Approved" in console.approve(t.serial, code)
        t.agent.wait_for_screen("in_service", TIMEOUT)
        MasterDriver(t.rig, t.terminal, t.trace).wait_status(
            lambda s: s["online"] and s["version"] == MIN_VERSION, TIMEOUT)
        row = console.monitor_row(t.serial)
        assert row["class"] == "" and row["Software version"] == str(MIN_VERSION), row
    finally:
        console.close()
