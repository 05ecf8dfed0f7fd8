"""The fleet simulator against a real server and Mosquitto: a small fleet, every figure present.

`batm-sim fleet` provisions its terminals through the server's enrollment and signed
credentials, loads it, unpairs a sample under load and reports. With 50 terminals for a few
seconds nothing may be lost: what the broker acknowledged is what the server stored.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_mqtt_master import require_mosquitto

from sim.fleet.run import JSON_FIELDS

BIN = Path(sys.executable).parent


@pytest.fixture
def mosquitto():
    require_mosquitto()


def fleet(directory: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "batm-sim"), "fleet", "--dir", str(directory), *args],
        capture_output=True, text=True, timeout=120)


def test_a_small_fleet_loses_nothing_and_reports_every_figure(tmp_path, mosquitto):
    run = fleet(tmp_path / "fleet", "--terminals", "50", "--interval", "1", "--duration", "5",
                "--json")
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert list(report) == list(JSON_FIELDS)
    assert report["terminals"] == 50
    assert report["sent"] >= 50 * 4  # a status a second for five seconds, and events
    assert report["stored"] == report["sent"]
    assert report["lost"] == 0
    assert 0 < report["status_p50_ms"] <= report["status_p95_ms"]
    assert report["revoke_p95_ms"] is not None and report["revoke_p95_ms"] > 0  # 5 unpaired
    for name in ("server_cpu_pct", "broker_cpu_pct"):
        assert report[name] >= 0
    for name in ("server_rss_mb", "broker_rss_mb"):
        assert report[name] > 1
    # The server's log names the enrollment: the fleet came through its real bulk path.
    assert "50 terminal(s) enrolled" in (tmp_path / "fleet" / "server.log").read_text()


def test_bad_arguments_are_refused_with_a_sentence(tmp_path):
    run = fleet(tmp_path, "--terminals", "0", "--interval", "1", "--duration", "1")
    assert run.returncode == 2
    assert "'0' is not a whole number ≥ 1" in run.stderr
    assert "Traceback" not in run.stderr
