"""Installs that succeed: stream, verify, arm, try once, commit - or fall back."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from agent.hardware import read_active_version
from batm_common.quarantine import Replacement, take_reports
from firmware_updater.errors import BusyError, FirmwareError, SourceError
from firmware_updater.install import Installer
from firmware_updater.testing import (
    NEW,
    OLD,
    make_bundle,
    make_key,
    make_rig,
    make_slots,
    make_tree,
)
from firmware_updater.trust import load_trusted_keys


@pytest.fixture()
def rig(tmp_path: Path):
    tmp, slots, key, src = make_rig(tmp_path)
    make_bundle(tmp / "b.fw", src, keys=[key])
    return tmp, slots, key, src


def installer(tmp: Path, slots: Path) -> Installer:
    return Installer(slots, trusted=load_trusted_keys(tmp / "trusted"))


def same_tree(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*"))
    return files == sorted(p.relative_to(b) for p in b.rglob("*") if p.name != "manifest.json"
                           or p.parent != b) and all(
        (a / f).read_bytes() == (b / f).read_bytes() for f in files if (a / f).is_file())


def test_install_switch_commit(rig) -> None:
    tmp, slots, _key, src = rig
    outcome = installer(tmp, slots).install(str(tmp / "b.fw"))
    assert outcome.state == "rebooting"
    assert read_active_version(slots) == OLD  # nothing switches before the restart
    assert same_tree(src, slots / "b")
    assert (slots / "b" / "bin" / "agent").stat().st_mode & 0o777 == 0o755
    slot_manifest = json.loads((slots / "b" / "manifest.json").read_text())
    assert slot_manifest["version"] == NEW and slot_manifest["hardware"] == "rpi4"

    assert installer(tmp, slots).resume(boot=True).state == "trying"  # the restart
    assert read_active_version(slots) == NEW
    assert installer(tmp, slots).commit().state == "committed"
    status = installer(tmp, slots).status()
    assert (status["active"], status["committed"], status["tried"]) == ("b", "b", None)
    assert installer(tmp, slots).resume(boot=True).state == "committed"  # next restart
    assert read_active_version(slots) == NEW


def test_try_without_commit_falls_back(rig) -> None:
    tmp, slots, _key, _src = rig
    installer(tmp, slots).install(str(tmp / "b.fw"))
    assert installer(tmp, slots).resume(boot=True).state == "trying"
    assert read_active_version(slots) == NEW
    outcome = installer(tmp, slots).resume(boot=True)  # restarted again, never committed
    assert outcome.state == "rolled_back"
    assert "not committed" in outcome.message
    assert read_active_version(slots) == OLD
    status = installer(tmp, slots).status()
    assert (status["active"], status["committed"], status["trying"]) == ("a", "a", False)
    with pytest.raises(FirmwareError, match="nothing to commit"):
        installer(tmp, slots).commit()
    # the gate offers it again later: a new install works from the rolled-back state
    assert installer(tmp, slots).install(str(tmp / "b.fw")).state == "rebooting"


def test_rollback_on_request(rig) -> None:
    tmp, slots, _key, _src = rig
    installer(tmp, slots).install(str(tmp / "b.fw"))
    installer(tmp, slots).resume(boot=True)
    outcome = installer(tmp, slots).rollback()
    assert outcome.state == "rolled_back" and read_active_version(slots) == OLD
    assert installer(tmp, slots).resume(boot=True).state == "rolled_back"
    assert read_active_version(slots) == OLD


def test_another_bundle_waits_for_commit(rig) -> None:
    tmp, slots, key, src = rig
    make_bundle(tmp / "c.fw", src, keys=[key], version=NEW + 1)
    installer(tmp, slots).install(str(tmp / "b.fw"))
    installer(tmp, slots).resume(boot=True)
    with pytest.raises(BusyError, match="commit or roll back"):
        installer(tmp, slots).install(str(tmp / "c.fw"))


def test_key_rotation(tmp_path: Path) -> None:
    slots = make_slots(tmp_path / "slots")
    old_key = make_key(tmp_path, "old")
    new_key = make_key(tmp_path, "new", trusted=False)
    src = make_tree(tmp_path / "src")
    make_bundle(tmp_path / "b.fw", src, keys=[new_key, old_key])  # signed by both
    assert installer(tmp_path, slots).install(str(tmp_path / "b.fw")).state == "rebooting"


def test_hook_vetoes_before_boot_and_commit_hook_rolls_back(rig) -> None:
    tmp, slots, _key, _src = rig
    hooks = tmp / "hooks"
    hooks.mkdir()
    (hooks / "armed").write_text("#!/bin/sh\necho 'battery low' >&2\nexit 3\n")
    (hooks / "armed").chmod(0o755)
    (slots / "updater.json").write_text(json.dumps({"hooks_dir": str(hooks)}))
    with pytest.raises(FirmwareError, match="battery low"):
        installer(tmp, slots).install(str(tmp / "b.fw"))
    assert read_active_version(slots) == OLD
    assert installer(tmp, slots).status()["tried"] is None
    (hooks / "armed").unlink()
    (hooks / "committing").write_text("#!/bin/sh\nexit 1\n")
    (hooks / "committing").chmod(0o755)
    installer(tmp, slots).install(str(tmp / "b.fw"))
    installer(tmp, slots).resume(boot=True)
    assert installer(tmp, slots).commit().state == "rolled_back"
    assert read_active_version(slots) == OLD


class RangeHandler(BaseHTTPRequestHandler):
    """Serves one bundle with Range support; can cut the first response short."""

    data = b""
    cut_at: int | None = None
    requests: ClassVar[list[str | None]] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        cls = type(self)
        header = self.headers.get("Range")
        cls.requests.append(header)
        start = int(header.split("=")[1].split("-")[0]) if header else 0
        body = cls.data[start:]
        self.send_response(206 if header else 200)
        if header:
            self.send_header("Content-Range", f"bytes {start}-{len(cls.data) - 1}/{len(cls.data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cls.cut_at is not None and start < cls.cut_at:
            self.wfile.write(body[:cls.cut_at - start])
            cls.cut_at = None
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection drops mid-download
            return
        self.wfile.write(body)


@pytest.fixture()
def http_bundle(rig):
    tmp, slots, _key, _src = rig
    RangeHandler.data = (tmp / "b.fw").read_bytes()
    RangeHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp, slots, f"http://127.0.0.1:{server.server_address[1]}/b.fw"
    server.shutdown()
    server.server_close()


def test_http_install_resumes_a_dropped_download_with_range(http_bundle) -> None:
    tmp, slots, url = http_bundle
    RangeHandler.cut_at = len(RangeHandler.data) // 2
    assert installer(tmp, slots).install(url).state == "rebooting"
    assert RangeHandler.requests[0] is None
    assert any(r and r != "bytes=0-" for r in RangeHandler.requests[1:])
    assert json.loads((slots / "b" / "manifest.json").read_text())["version"] == NEW


def test_http_unreachable_is_a_clear_source_error(rig) -> None:
    tmp, slots, _key, _src = rig
    with pytest.raises(SourceError, match=r"cannot download http://127\.0\.0\.1:9/"):
        installer(tmp, slots).install("http://127.0.0.1:9/b.fw")
    assert read_active_version(slots) == OLD


@pytest.fixture()
def reports():
    take_reports()  # quarantines from other tests in this process
    yield take_reports
    take_reports()


@pytest.mark.parametrize("damage", [b"{\"state\": \"downl", b"[]", b'{"state": "dancing"}'])
def test_a_damaged_journal_is_quarantined_and_the_next_install_proceeds(
        rig, reports, damage) -> None:
    """Issue 13, item 5: a damaged journal used to refuse every later install ("remove it")."""
    tmp, slots, _key, _src = rig
    journal = slots / "updater" / "journal.json"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_bytes(damage)
    outcome = installer(tmp, slots).resume(boot=True)
    assert outcome.state == "failed" and read_active_version(slots) == OLD
    [kept] = journal.parent.glob("journal.json.corrupt-*")
    assert kept.read_bytes() == damage
    [report] = reports()
    assert report.replacement == Replacement.RECREATED and report.moved_to == str(kept)
    assert "damaged" in installer(tmp, slots).status()["install"]["reason"]
    assert installer(tmp, slots).install(str(tmp / "b.fw")).state == "rebooting"
    assert installer(tmp, slots).resume(boot=True).state == "trying"


def test_a_journal_damaged_during_a_try_boot_rolls_back_to_the_committed_slot(
        rig, reports) -> None:
    tmp, slots, _key, _src = rig
    installer(tmp, slots).install(str(tmp / "b.fw"))
    assert installer(tmp, slots).resume(boot=True).state == "trying"
    (slots / "updater" / "journal.json").write_bytes(b"\x00" * 64)  # a torn sector
    outcome = installer(tmp, slots).resume(boot=False)  # the agent restarts
    assert outcome.state == "rolled_back" and "journal was damaged" in outcome.message
    assert read_active_version(slots) == OLD
    status = installer(tmp, slots).status()
    assert (status["active"], status["committed"], status["trying"]) == ("a", "a", False)
    assert len(reports()) == 1
