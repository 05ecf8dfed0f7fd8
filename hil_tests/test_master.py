"""The master service on the rig (the issue's must-shows): status within 1 s, exactly-once
events through broker restarts, a broker SIGKILL and a link cut, unpair revocation within 1 s,
log retrieval, reset-db, and bad payloads answered with errors."""

from __future__ import annotations

import datetime
import io
import json
import tarfile
import threading
import time
from pathlib import Path

import pytest

from hil_tests.rig.drivers.master import MasterDriver
from hil_tests.rig.strategies import PairingStrategy
from hil_tests.rig.target import Target
from server.cli.admin_client import SocketBackend

TIMEOUT = 30.0


@pytest.fixture
def master(target: Target):
    PairingStrategy(target, timeout=TIMEOUT).transition("in_service")
    driver = MasterDriver(target.rig, target.terminal, target.trace)
    driver.wait_status(lambda s: s["online"] and s["screen"] == "in_service", TIMEOUT)
    yield driver
    driver.close()


def credentials(target: Target) -> dict:
    return json.loads((Path(target.terminal.state_dir) / "mqtt-credentials.json").read_text())


def iso(seconds_from_now: float) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds_from_now)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_status_change_is_visible_in_the_server_within_1s(target: Target, master: MasterDriver):
    seen = master.status()
    assert seen["version"] == target.terminal.version and seen["agent_state"] == "InService"
    if target.rig.server.broker:  # rig.json names the broker the server really runs
        assert master.broker() == json.loads(
            (master.data_dir / "server.json").read_text())["mqtt"]
    assert seen["last_update"] and seen["slot"]
    # An event drained and acknowledged changes last_sync.
    before = seen["last_sync"]
    started = time.monotonic()
    target.agent.run("event", "door.opened")
    master.wait_status(lambda s: s["last_sync"] != before and s["outbox_pending"] == 0, 1.0)
    assert time.monotonic() - started < 1.0
    # A power cut: the broker publishes the last will, the server shows the terminal offline.
    started = time.monotonic()
    target.power.cut()
    master.wait_status(lambda s: not s["online"], 1.0)
    assert time.monotonic() - started < 1.0 + 0.5  # the supervisor's kill answer included
    target.power.on()
    master.wait_status(lambda s: s["online"] and s["screen"] == "in_service", TIMEOUT)


# Counts the terminal's events, which the server keeps after the terminal is deleted: a rig of
# its own, not the shared one that a reset hands over.
@pytest.mark.fresh_rig
def test_1000_events_survive_broker_restarts_a_sigkill_and_a_link_cut_exactly_once(
    target: Target, master: MasterDriver
) -> None:
    def emit(n: int, run: str) -> None:
        done = target.agent.run("emit-test-events", str(n), "--run", run, timeout=120)
        assert done.returncode == 0, done.stderr

    emit(250, "a")
    master.restart_broker()
    emit(250, "b")
    master.link("down")
    emit(250, "c")  # recorded while the terminal is cut off
    master.link("up")
    master.restart_broker()
    # While "d" is being recorded and drained, the broker dies without saving: what it had
    # acknowledged but not yet delivered is lost there; the terminal still holds it (no
    # server acknowledgement yet) and sends it again.
    failures: list[BaseException] = []

    def emit_d() -> None:
        try:
            emit(250, "d")
        except BaseException as exc:  # reported below, on the test's thread
            failures.append(exc)

    emitting = threading.Thread(target=emit_d)
    emitting.start()
    try:
        master.wait_events(750 + 25, TIMEOUT)
    finally:
        master.kill_broker()
        emitting.join(120)
    assert not failures and not emitting.is_alive(), failures
    events = master.wait_events(1000, 120)
    assert events["count"] == 1000, f"{events['count']} events arrived"
    listed = master.events(limit=2000)["events"]
    keys = sorted((e["data"]["run"], e["data"]["n"]) for e in listed)
    assert keys == sorted((run, n) for run in "abcd" for n in range(250))
    view = master.wait_status(lambda s: s["outbox_pending"] == 0 and s["last_sync_error"] is None,
                              TIMEOUT)
    assert view["last_sync"]
    # The server's view can predate the acknowledgements the killed broker lost: the terminal
    # sends those events again, and must end with nothing pending.
    assert target.agent.wait_outbox_empty(TIMEOUT)["outbox_pending"] == 0


def test_unpair_revokes_mqtt_within_1s(target: Target, master: MasterDriver) -> None:
    password = credentials(target)["password"]
    assert master.probe_as_terminal(password)["connack"] == 0  # valid before the unpair
    # Measure the system, not two CLI start-ups: the unpair goes straight to the server's admin
    # socket, and the terminal's own screen model says when pairing_code appeared.
    admin = SocketBackend(Path(target.server.server.data_dir) / "admin.sock")
    try:
        started = time.time()
        admin.unpair(target.serial)
    finally:
        admin.close()
    shown = target.agent.wait_for_screen("pairing_code", TIMEOUT)
    assert shown["changed_at"] - started < 1.0, shown["changed_at"] - started
    refused = master.probe_as_terminal(password)
    assert refused["connack"] in (134, 135), refused
    assert not (Path(target.terminal.state_dir) / "mqtt-credentials.json").exists()


def test_logs_for_a_period_honour_max_size_and_reset_db_keeps_the_agent(
    target: Target, master: MasterDriver
) -> None:
    for i in range(200):
        target.agent.run("event", "filler", "--data", json.dumps({"i": i, "pad": "x" * 200}))
    pid = target.agent.status()["pid"]
    done = target.server.run("terminal", "reset-db", target.serial, "--yes")
    assert done.returncode == 0, done.stderr
    assert target.agent.status()["pid"] == pid and target.agent.screen()["screen"] == "in_service"
    assert master.wait_status(lambda s: s["outbox_pending"] == 0, TIMEOUT)

    out = target.server.run("terminal", "logs", target.serial, "--since", iso(-600), "--until",
                            iso(60), "--max-size", "2048", "--wait", "--timeout", "30")
    assert out.returncode == 0, out.stderr
    path = out.stdout.strip().split("file ")[-1]
    with open(path, "rb") as handle:
        data = handle.read()
    assert 0 < len(data) <= 2048
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        log = tar.extractfile("agent.log").read().decode()
        readme = tar.extractfile("README.txt").read().decode()
    assert "local database reset" in log  # a line of the period
    assert "max_size 2048" in readme
    # A period in the past holds none of today's lines.
    out = target.server.run("terminal", "logs", target.serial, "--since", "2001-01-01T00:00:00Z",
                            "--until", "2001-01-02T00:00:00Z", "--max-size", "2048", "--wait")
    assert out.returncode == 0, out.stderr
    with open(out.stdout.strip().split("file ")[-1], "rb") as handle, tarfile.open(
            fileobj=io.BytesIO(handle.read()), mode="r:gz") as tar:
        assert tar.extractfile("agent.log").read() == b""


# Ends waiting for one new event: on a shared rig an earlier test's event would answer.
@pytest.mark.fresh_rig
def test_bad_payloads_and_arguments_get_errors_never_a_crash(
    target: Target, master: MasterDriver
) -> None:
    serial = target.serial
    pid = target.agent.status()["pid"]
    answer = master.probe_as_server(
        "--subscribe", f"terminals/{serial}/results", "--expect", "4",
        "--publish", f"terminals/{serial}/commands", "{not json",
        "--publish-size", f"terminals/{serial}/commands", "70000",
        "--publish", f"terminals/{serial}/commands",
        json.dumps({"id": "bad-args", "command": "retrieve_logs",
                    "args": {"since": "tomorrow", "until": 5, "max_size": -1}}),
        "--publish", f"terminals/{serial}/commands",
        json.dumps({"id": "unknown", "command": "format_disk"}),
    )
    results = [m["payload"] for m in answer["messages"]]
    assert len(results) == 4 and all(r["ok"] is False and r["error"] for r in results), results
    assert {r["command_id"] for r in results} == {None, "bad-args", "unknown"}
    # Bad payloads from a terminal's side: the server refuses them and says so. The refused
    # commands above count too (their error results), and may still be arriving: count from
    # their four results on.
    master.wait_status(lambda s: s["rejected"] >= 4, TIMEOUT)
    before = master.status()["rejected"]
    password = credentials(target)["password"]
    master.probe_as_terminal(password, "--publish", f"terminals/{serial}/events", "[]",
                             "--publish-size", f"terminals/{serial}/events", "70000")
    view = master.wait_status(lambda s: s["rejected"] >= before + 2, TIMEOUT)
    assert "event" in view["last_reject"]
    # Bad command arguments from the CLI are refused before they are sent.
    refused = target.server.run("terminal", "logs", serial, "--since", "soon", "--until",
                                iso(0), "--max-size", "10")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    # Still the same agent, still in service, still publishing.
    assert target.agent.status()["pid"] == pid
    target.agent.run("event", "still.alive")
    master.wait_events(1, TIMEOUT)
