"""The fleet simulator against real servers, Mosquitto and PostgreSQL: a small fleet split over
two simulator processes and two server replicas, every figure present and merged.

`batm-sim fleet` provisions its terminals through the servers' enrollment and signed
credentials (each from the replica running the terminal's broker), loads them, unpairs a
sample under load and reports. Nothing may be lost: what the brokers acknowledged is what the
replicas stored, added up over both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_mqtt_master import require_mosquitto

from sim.fleet.run import JSON_FIELDS, REPORT_FILE

BIN = Path(sys.executable).parent


@pytest.fixture
def mosquitto():
    require_mosquitto()


def fleet(directory: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "batm-sim"), "fleet", "--dir", str(directory), *args],
        capture_output=True, text=True, timeout=120)


def test_a_fleet_over_two_processes_and_two_replicas_loses_nothing(tmp_path, mosquitto,
                                                                   postgres_cluster):
    directory = tmp_path / "fleet"
    run = fleet(directory, "--terminals", "20", "--interval", "0.3", "--duration", "2",
                "--processes", "2", "--replicas", "2", "--database", postgres_cluster.fresh(),
                "--json")
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert list(report) == list(JSON_FIELDS)
    assert report["terminals"] == 20
    assert report["sent"] >= 20 * 5  # a status every 0.3 s for two seconds, and events
    assert report["stored"] == report["sent"]
    assert report["lost"] == 0
    assert 0 < report["status_p50_ms"] <= report["status_p95_ms"]
    assert report["revoke_p95_ms"] is not None and report["revoke_p95_ms"] > 0  # 2 unpaired
    full = json.loads((directory / REPORT_FILE).read_text())["extra"]
    assert full["events_sent"] >= 18 and full["events_unacknowledged"] == 0
    # The cut and the unpair's answer are timed apart: both seen for each unpaired terminal.
    assert full["revoked"] == 2 and full["unpair_answer_p95_ms"] > 0
    assert full["simulator_processes"] == 2 and full["replicas"] == 2
    # Both brokers hold terminals, and their CPU and memory are in the sums.
    assert all(count > 0 for count in full["per_broker"].values())
    processes = {p["name"]: p for p in full["processes"]}
    assert {"server r1", "server r2", "broker r1", "broker r2", "simulator worker 1",
            "simulator worker 2"} <= processes.keys()
    assert report["broker_rss_mb"] == pytest.approx(
        processes["broker r1"]["rss_mb"] + processes["broker r2"]["rss_mb"], abs=0.2)
    for name in ("server_rss_mb", "broker_rss_mb"):
        assert report[name] > 2
    # Enrolled through the first replica; each replica made the accounts of the terminals
    # assigned to its own broker (credentials requests routed by serial, as a load balancer).
    assert "20 terminal(s) enrolled" in (directory / "server.log").read_text()
    issued = [(directory / log).read_text().count("MQTT credentials issued for")
              for log in ("server.log", "server-2.log")]
    port = (directory / "mqtt-port").read_text().strip()
    assert issued[0] == full["per_broker"][f"127.0.0.1:{port}"]
    assert sum(issued) == 20


def test_bad_arguments_are_refused_with_a_sentence(tmp_path):
    run = fleet(tmp_path, "--terminals", "0", "--interval", "1", "--duration", "1")
    assert run.returncode == 2
    assert "'0' is not a whole number ≥ 1" in run.stderr
    assert "Traceback" not in run.stderr
    run = fleet(tmp_path, "--terminals", "10", "--replicas", "2")
    assert run.returncode == 1
    assert "--replicas 2 needs --database postgresql" in run.stderr
    assert "Traceback" not in run.stderr
    run = fleet(tmp_path, "--terminals", "10", "--revoke-sample", "-1")
    assert run.returncode == 2
    assert "'-1' is not a whole number ≥ 0" in run.stderr
    assert "Traceback" not in run.stderr
