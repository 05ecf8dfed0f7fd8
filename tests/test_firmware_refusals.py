"""Every refusal in the issue: the reason is clear and the running slot is untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_updater.errors import FirmwareError, PayloadError
from firmware_updater.install import Installer
from firmware_updater.payload_check import check_payload
from firmware_updater.testing import (
    OLD,
    assemble,
    hostile_tar,
    make_bundle,
    make_key,
    make_rig,
    snapshot,
)
from firmware_updater.trust import load_trusted_keys


@pytest.fixture()
def rig(tmp_path: Path):
    return make_rig(tmp_path)


def refused(tmp_path: Path, slots: Path, bundle: Path, match: str) -> str:
    before = snapshot(slots)
    installer = Installer(slots, trusted=load_trusted_keys(tmp_path / "trusted"))
    with pytest.raises(FirmwareError, match=match) as info:
        installer.install(str(bundle))
    assert snapshot(slots) == before
    assert "\n" not in str(info.value)
    assert installer.backend.active() == "a" and installer.backend.committed() == "a"
    return str(info.value)


def test_unsigned(rig) -> None:
    tmp, slots, _key, src = rig
    make_bundle(tmp / "b.fw", src, keys=[])
    refused(tmp, slots, tmp / "b.fw", "^unsigned")


def test_signed_by_an_untrusted_key(rig) -> None:
    tmp, slots, _key, src = rig
    stranger = make_key(tmp, "stranger", trusted=False)
    make_bundle(tmp / "b.fw", src, keys=[stranger])
    refused(tmp, slots, tmp / "b.fw", "not signed by a trusted key")


def test_wrong_signature(rig) -> None:
    tmp, slots, key, src = rig
    make_bundle(tmp / "b.fw", src, keys=[key])
    data = bytearray((tmp / "b.fw").read_bytes())
    data[20] ^= 0x01  # inside the manifest: a different version, created time, …
    (tmp / "b.fw").write_bytes(bytes(data))
    refused(tmp, slots, tmp / "b.fw", "^wrong signature")


def test_tampered_payload(rig) -> None:
    tmp, slots, key, src = rig
    make_bundle(tmp / "b.fw", src, keys=[key])
    data = bytearray((tmp / "b.fw").read_bytes())
    data[-30_000] ^= 0xFF
    (tmp / "b.fw").write_bytes(bytes(data))
    message = refused(tmp, slots, tmp / "b.fw", "^tampered payload")
    assert "chunk" in message
    assert not (slots / "b" / "manifest.json").exists()  # never made bootable


def test_truncated(rig) -> None:
    tmp, slots, key, src = rig
    make_bundle(tmp / "b.fw", src, keys=[key])
    data = (tmp / "b.fw").read_bytes()
    (tmp / "b.fw").write_bytes(data[:-5000])
    refused(tmp, slots, tmp / "b.fw", "^truncated")
    (tmp / "b.fw").write_bytes(data[:600])  # inside the manifest
    refused(tmp, slots, tmp / "b.fw", "^truncated")


def test_oversize_trailing_data(rig) -> None:
    tmp, slots, key, src = rig
    make_bundle(tmp / "b.fw", src, keys=[key])
    with open(tmp / "b.fw", "ab") as f:
        f.write(b"\0" * 4096)
    refused(tmp, slots, tmp / "b.fw", "^oversize")


def test_oversize_for_the_slot(rig) -> None:
    tmp, slots, key, src = rig
    (slots / "updater.json").write_text('{"backend": "dir", "max_slot_bytes": 65536}')
    make_bundle(tmp / "b.fw", src, keys=[key])
    refused(tmp, slots, tmp / "b.fw", r"^oversize: the payload \(\d+ bytes\) does not fit slot b")


def test_downgrade(rig) -> None:
    tmp, slots, key, src = rig
    make_bundle(tmp / "b.fw", src, keys=[key], version=20220101, install_from="20190101-")
    refused(tmp, slots, tmp / "b.fw", "^downgrade: .*20220101.* older than .*20230801")
    make_bundle(tmp / "same.fw", src, keys=[key], version=OLD, install_from="20190101-")
    refused(tmp, slots, tmp / "same.fw", "already running")


def test_wrong_hardware(rig) -> None:
    tmp, slots, key, src = rig
    make_bundle(tmp / "b.fw", src, keys=[key], hardware=("rpi5",))
    refused(tmp, slots, tmp / "b.fw",
            "^wrong hardware: the bundle is for rpi5, this terminal is rpi4")


def test_not_installable_from_this_version(rig) -> None:
    tmp, slots, key, src = rig
    make_bundle(tmp / "b.fw", src, keys=[key], install_from="20231001-20231231")
    message = refused(tmp, slots, tmp / "b.fw", "^not installable from version 20230801")
    assert "20231001-20231231" in message and "intermediate" in message


@pytest.mark.parametrize(("kind", "match"), [
    ("dotdot", r"escapes the slot \(\.\.\)"),
    ("nested", r"escapes the slot \(\.\.\)"),
    ("absolute", "absolute path"),
    ("symlink", "is a symlink"),
    ("hardlink", "is a hard link"),
    ("chardev", "is a character device"),
    ("blockdev", "is a block device"),
    ("fifo", "is a fifo"),
    ("manifest", "reserved"),
])
def test_archive_members_escaping_the_slot(rig, kind: str, match: str) -> None:
    tmp, slots, key, _src = rig
    assemble(tmp / "evil.fw", hostile_tar(kind), keys=[key])
    refused(tmp, slots, tmp / "evil.fw", match)
    assert not (tmp / "escape.txt").exists() and not (slots / "escape.txt").exists()
    assert not (slots / "b" / "manifest.json").exists()


def test_refusal_is_recorded_but_does_not_hide_an_install_in_progress(rig) -> None:
    tmp, slots, _key, src = rig
    make_bundle(tmp / "b.fw", src, keys=[])
    refused(tmp, slots, tmp / "b.fw", "^unsigned")
    status = Installer(slots).status()
    assert status["install"]["state"] == "failed"
    assert status["install"]["reason"].startswith("unsigned")


# -- the same refusals before publishing: check_payload reads a bundle as a terminal would ------


@pytest.mark.parametrize("kind", ["dotdot", "nested", "absolute", "symlink", "hardlink",
                                  "chardev", "blockdev", "fifo", "manifest"])
def test_check_payload_refuses_what_a_terminal_would(rig, kind: str) -> None:
    tmp, _slots, key, _src = rig
    assemble(tmp / "evil.fw", hostile_tar(kind), keys=[key])
    with pytest.raises(FirmwareError):
        check_payload(tmp / "evil.fw")


def test_check_payload_refuses_garbage_and_tampering(rig) -> None:
    tmp, _slots, key, src = rig
    assemble(tmp / "garbage.fw", (b"this is not a tar archive. " * 200)[:3072], keys=[key])
    with pytest.raises(PayloadError, match="tar"):
        check_payload(tmp / "garbage.fw")
    make_bundle(tmp / "good.fw", src, keys=[key])
    data = bytearray((tmp / "good.fw").read_bytes())
    data[-600] ^= 1
    (tmp / "tampered.fw").write_bytes(bytes(data))
    with pytest.raises(PayloadError, match="signed digest"):
        check_payload(tmp / "tampered.fw")


def test_check_payload_passes_a_good_bundle_and_counts_it(rig) -> None:
    tmp, _slots, key, src = rig
    make_bundle(tmp / "good.fw", src, keys=[key])
    summary = check_payload(tmp / "good.fw")
    files = [p for p in src.rglob("*") if p.is_file()]
    assert summary.files == len(files)
    assert summary.bytes == sum(p.stat().st_size for p in files)
