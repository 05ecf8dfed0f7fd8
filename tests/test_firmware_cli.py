"""`batm-firmware` end to end: the command line a technician and the agent use."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from firmware_updater.testing import NEW, OLD, cli_argv, cli_env, make_slots, make_tree


def fw(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli_argv(*args), env=cli_env(), capture_output=True, text=True,
                          timeout=60)


def test_keygen_build_sign_inspect_install_status_commit(tmp_path: Path) -> None:
    slots = make_slots(tmp_path / "slots")
    src = make_tree(tmp_path / "src")
    (tmp_path / "trusted").mkdir()
    assert fw("keygen", str(tmp_path / "k")).returncode == 0
    (tmp_path / "trusted" / "k.pub").write_bytes((tmp_path / "k.pub").read_bytes())
    bundle = str(tmp_path / "b.fw")
    done = fw("build", "--version", str(NEW), "--hardware", "rpi4", "--install-from",
              f"{OLD}-", "--out", bundle, str(src))
    assert done.returncode == 0, done.stderr
    assert fw("sign", "--key", str(tmp_path / "k"), bundle).returncode == 0
    done = fw("inspect", bundle, "--json", "--verify", "--trusted-keys", str(tmp_path / "trusted"))
    report = json.loads(done.stdout)
    assert report["manifest"]["version"] == NEW and report["payload_verified"]
    assert list(report["trust"].values()) == ["trusted, valid"]
    done = fw("install", bundle, "--slots-dir", str(slots), "--trusted-keys",
              str(tmp_path / "trusted"))
    assert done.returncode == 0 and "try it once" in done.stdout, done.stderr
    assert fw("resume", "--slots-dir", str(slots)).returncode == 0
    status = json.loads(fw("status", "--slots-dir", str(slots), "--json").stdout)
    assert (status["active"], status["committed"], status["tried"], status["trying"]) == (
        "b", "a", "b", True)
    assert status["slots"]["b"]["version"] == NEW
    assert fw("commit", "--slots-dir", str(slots)).returncode == 0
    text = fw("status", "--slots-dir", str(slots)).stdout
    assert "slot b     version 20240115  [active, committed]" in text


def test_errors_are_one_line_exit_1(tmp_path: Path) -> None:
    slots = make_slots(tmp_path / "slots")
    (tmp_path / "junk.fw").write_bytes(b"hello")
    (tmp_path / "trusted").mkdir()
    for args in (["inspect", str(tmp_path / "missing.fw")],
                 ["inspect", str(tmp_path / "junk.fw")],
                 ["install", str(tmp_path / "junk.fw"), "--slots-dir", str(slots),
                  "--trusted-keys", str(tmp_path / "trusted")],
                 ["commit", "--slots-dir", str(slots)],
                 ["rollback", "--slots-dir", str(slots)],
                 ["status", "--slots-dir", str(tmp_path / "nowhere")],
                 ["sign", "--key", str(tmp_path / "nokey"), str(tmp_path / "junk.fw")]):
        done = fw(*args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("batm-firmware: ")
        assert "Traceback" not in done.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    for args in ([], ["build", "--version", "yesterday", "--hardware", "rpi4", "--out", "x", "."],
                 ["build", "--version", str(NEW), "--hardware", "rpi4", "--install-from",
                  "20240101-20230101", "--out", "x", "."],
                 ["install", "b.fw"], ["frobnicate"]):
        done = subprocess.run(cli_argv(*args), env=cli_env(BATM_FW_TRUSTED_KEYS=""),
                              capture_output=True, text=True)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
