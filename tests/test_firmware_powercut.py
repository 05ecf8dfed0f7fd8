"""Power cuts: the install is SIGKILLed at each persisted step and inside the payload stream.

The process kills itself at a named point (BATM_FW_CRASH_AT, firmware_updater/faults.py), so
every run is deterministic. After each kill the terminal must run a good slot (its manifest
parses and its version is the old or the new one), and restarting must complete the upgrade.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from agent.hardware import read_active_version
from firmware_updater.manifest import Manifest
from firmware_updater.testing import (
    NEW,
    OLD,
    cli_argv,
    cli_env,
    make_bundle,
    make_image_tree,
    make_key,
    make_rpi_rig,
    make_slots,
    make_tree,
    power_cycle,
)

INSTALL_STATES = ["downloading", "written", "armed", "rebooting"]
CHUNK = 4096
KILLED = -signal.SIGKILL


def fw(tmp: Path, *args: str, crash: str | None = None) -> subprocess.CompletedProcess:
    extra = {"BATM_FW_CHECKPOINT_BYTES": str(4 * CHUNK)}
    if crash:
        extra["BATM_FW_CRASH_AT"] = crash
    return subprocess.run(cli_argv(*args, "--slots-dir", str(tmp / "slots")),
                          env=cli_env(**extra), capture_output=True, text=True, timeout=60)


def keys(tmp: Path) -> list[str]:
    return ["--trusted-keys", str(tmp / "trusted")]


def journal(tmp: Path) -> dict:
    return json.loads((tmp / "slots" / "updater" / "journal.json").read_text())


def payload_size(bundle: Path) -> int:
    data = bundle.read_bytes()
    length = int.from_bytes(data[8:12], "big")
    return Manifest.from_bytes(data[12:12 + length]).payload_size


def assert_good_slot(tmp: Path, src: Path) -> int:
    slots = tmp / "slots"
    version = read_active_version(slots)  # raises unless active/manifest.json parses
    assert version in (OLD, NEW)
    if version == NEW and (slots / "b" / "app.py").exists():
        for path in src.rglob("*"):
            if path.is_file():
                assert (slots / "b" / path.relative_to(src)).read_bytes() == path.read_bytes()
    return version


@pytest.fixture()
def rig(tmp_path: Path):
    make_slots(tmp_path / "slots")
    key = make_key(tmp_path, "release")
    src = make_tree(tmp_path / "src", big=160_000)
    make_bundle(tmp_path / "b.fw", src, keys=[key], chunk_size=CHUNK)
    return tmp_path, src


def finish_after_restart(tmp: Path, src: Path) -> None:
    """Restart (resume at boot) until the new slot is tried, then commit it."""
    for _ in range(3):
        done = fw(tmp, "resume", *keys(tmp))
        assert done.returncode == 0, done.stderr
        assert_good_slot(tmp, src)
        if journal(tmp)["state"] == "trying":
            break
    assert journal(tmp)["state"] == "trying", journal(tmp)
    done = fw(tmp, "commit")
    assert done.returncode == 0, done.stderr
    assert journal(tmp)["state"] == "committed"
    assert assert_good_slot(tmp, src) == NEW


@pytest.mark.parametrize("state", INSTALL_STATES)
def test_killed_at_each_install_step(rig, state: str) -> None:
    tmp, src = rig
    done = fw(tmp, "install", str(tmp / "b.fw"), *keys(tmp), crash=state)
    assert done.returncode == KILLED, done.stderr
    assert journal(tmp)["state"] == state
    assert assert_good_slot(tmp, src) == OLD
    finish_after_restart(tmp, src)


@pytest.mark.parametrize("where", ["start", "first-chunk", "checkpoint", "mid", "end"])
def test_killed_inside_the_payload_stream(rig, where: str) -> None:
    tmp, src = rig
    size = payload_size(tmp / "b.fw")
    offset = {"start": 0, "first-chunk": 1000, "checkpoint": 4 * CHUNK,
              "mid": size // 2 + 777, "end": size - 600}[where]
    done = fw(tmp, "install", str(tmp / "b.fw"), *keys(tmp), crash=f"offset:{offset}")
    assert done.returncode == KILLED, done.stderr
    record = journal(tmp)
    assert record["state"] == "downloading"
    assert record["offset"] <= offset and record["offset"] % CHUNK == 0
    if offset >= 8 * CHUNK:
        assert record["offset"] > 0  # the next run resumes, it does not start over
    assert assert_good_slot(tmp, src) == OLD
    # the gate offers the same bundle again: the install resumes from the checkpoint
    done = fw(tmp, "install", str(tmp / "b.fw"), *keys(tmp))
    assert done.returncode == 0, done.stderr
    finish_after_restart(tmp, src)


def test_killed_twice_in_the_stream(rig) -> None:
    tmp, src = rig
    size = payload_size(tmp / "b.fw")
    for offset in (size // 3, 2 * size // 3):
        done = fw(tmp, "install", str(tmp / "b.fw"), *keys(tmp), crash=f"offset:{offset}")
        assert done.returncode == KILLED
        assert assert_good_slot(tmp, src) == OLD
    finish_after_restart(tmp, src)


def test_killed_while_trying_falls_back_then_completes(rig) -> None:
    tmp, src = rig
    assert fw(tmp, "install", str(tmp / "b.fw"), *keys(tmp)).returncode == 0
    assert fw(tmp, "resume", crash="trying").returncode == KILLED
    done = fw(tmp, "resume")  # the next start: the try is over without a commit
    assert done.returncode == 0 and "rolled back" in done.stdout
    assert assert_good_slot(tmp, src) == OLD
    assert fw(tmp, "install", str(tmp / "b.fw"), *keys(tmp)).returncode == 0
    finish_after_restart(tmp, src)


def test_killed_while_committing(rig) -> None:
    tmp, src = rig
    assert fw(tmp, "install", str(tmp / "b.fw"), *keys(tmp)).returncode == 0
    assert fw(tmp, "resume").returncode == 0
    assert fw(tmp, "commit", crash="committing").returncode == KILLED
    assert assert_good_slot(tmp, src) == NEW
    assert fw(tmp, "commit").returncode == 0
    assert journal(tmp)["state"] == "committed"
    assert fw(tmp, "resume").returncode == 0 and assert_good_slot(tmp, src) == NEW


def test_killed_while_rolling_back(rig) -> None:
    tmp, src = rig
    assert fw(tmp, "install", str(tmp / "b.fw"), *keys(tmp)).returncode == 0
    assert fw(tmp, "resume").returncode == 0
    assert fw(tmp, "rollback", crash="rolling_back").returncode == KILLED
    assert fw(tmp, "resume").returncode == 0
    assert journal(tmp)["state"] == "rolled_back"
    assert assert_good_slot(tmp, src) == OLD


# -- the Raspberry Pi backend: a kill is followed by a power cut (a plain boot) -----------------

@pytest.fixture()
def pi(tmp_path: Path):
    make_rpi_rig(tmp_path)
    key = make_key(tmp_path, "release")
    src = make_image_tree(tmp_path / "src", size=200_000)
    make_bundle(tmp_path / "b.fw", src, keys=[key], chunk_size=CHUNK)
    return tmp_path, src


@pytest.mark.parametrize("point", [*INSTALL_STATES, "offset:30000", "offset:150001"])
def test_pi_power_cut_at_each_step(pi, point: str) -> None:
    tmp, src = pi
    done = fw(tmp, "install", str(tmp / "b.fw"), *keys(tmp), crash=point)
    assert done.returncode == KILLED, done.stderr
    power_cycle(tmp)
    assert assert_good_slot(tmp, src) == OLD
    finish_after_restart(tmp, src)  # the fake `reboot "0 tryboot"` sets the device tree
    image = (src / "partition.img").read_bytes()
    assert (tmp / "p3.img").read_bytes()[:len(image)] == image
    assert "boot_partition=3\n[tryboot]" in (tmp / "autoboot" / "autoboot.txt").read_text()
