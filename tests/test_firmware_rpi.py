"""Raspberry Pi backend against image files (partitions) and a fake device tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.hardware import read_active_version
from firmware_updater.errors import FirmwareError
from firmware_updater.install import Installer
from firmware_updater.slots_rpi import parse_autoboot, render_autoboot
from firmware_updater.testing import (
    NEW,
    OLD,
    make_bundle,
    make_image_tree,
    make_key,
    make_rpi_rig,
    make_tree,
    power_cycle,
)
from firmware_updater.trust import load_trusted_keys


@pytest.fixture()
def pi(tmp_path: Path):
    slots = make_rpi_rig(tmp_path)
    key = make_key(tmp_path, "release")
    src = make_image_tree(tmp_path / "src")
    make_bundle(tmp_path / "b.fw", src, keys=[key], chunk_size=16384)
    return tmp_path, slots, key, src


def installer(tmp: Path, slots: Path) -> Installer:
    return Installer(slots, trusted=load_trusted_keys(tmp / "trusted"))


def autoboot(tmp: Path) -> dict:
    return parse_autoboot((tmp / "autoboot" / "autoboot.txt").read_text())


def reboots(tmp: Path) -> list[str]:
    path = tmp / "reboots.log"
    return path.read_text().splitlines() if path.exists() else []


def test_autoboot_format() -> None:
    text = render_autoboot(2, 3).decode()
    assert text == "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"
    assert parse_autoboot(text) == {"all": {"tryboot_a_b": "1", "boot_partition": "2"},
                                    "tryboot": {"boot_partition": "3"}}


def test_install_tryboot_commit(pi) -> None:
    tmp, slots, _key, src = pi
    outcome = installer(tmp, slots).install(str(tmp / "b.fw"))
    assert outcome.state == "rebooting"
    assert reboots(tmp) == ["0 tryboot"]  # one-shot tryboot reboot
    image = (src / "partition.img").read_bytes()
    written = (tmp / "p3.img").read_bytes()
    assert written[:len(image)] == image and len(written) == 1 << 20  # in place, no resize
    assert (tmp / "p2.img").read_bytes() == bytes(1 << 20)  # the running partition untouched
    assert autoboot(tmp)["all"]["boot_partition"] == "2"  # default unchanged until commit

    assert installer(tmp, slots).resume(boot=True).state == "trying"  # booted p3 by tryboot
    assert read_active_version(slots) == NEW
    assert installer(tmp, slots).commit().state == "committed"
    assert autoboot(tmp) == {"all": {"tryboot_a_b": "1", "boot_partition": "3"},
                             "tryboot": {"boot_partition": "2"}}
    power_cycle(tmp)  # a plain boot now starts the new partition
    assert installer(tmp, slots).resume(boot=True).state == "committed"
    assert read_active_version(slots) == NEW
    status = installer(tmp, slots).status()
    assert (status["active"], status["committed"], status["trying"]) == ("b", "b", False)


def test_try_that_never_commits_falls_back(pi) -> None:
    tmp, slots, _key, _src = pi
    installer(tmp, slots).install(str(tmp / "b.fw"))
    installer(tmp, slots).resume(boot=True)
    assert read_active_version(slots) == NEW
    power_cycle(tmp)  # the tried system hangs / loses power before reaching the gate
    outcome = installer(tmp, slots).resume(boot=True)
    assert outcome.state == "rolled_back" and "not committed" in outcome.message
    assert read_active_version(slots) == OLD
    assert autoboot(tmp)["all"]["boot_partition"] == "2"


def test_commit_requires_the_tryboot_flag(pi) -> None:
    tmp, slots, _key, _src = pi
    installer(tmp, slots).install(str(tmp / "b.fw"))
    power_cycle(tmp)  # the try boot never happened: booted p2 plainly
    with pytest.raises(FirmwareError, match="nothing to commit"):
        installer(tmp, slots).commit()
    with pytest.raises(FirmwareError, match="not started by a try boot"):
        installer(tmp, slots).backend.commit("b")
    assert autoboot(tmp)["all"]["boot_partition"] == "2"
    assert read_active_version(slots) == OLD


def test_explicit_rollback_reboots_into_the_default(pi) -> None:
    tmp, slots, _key, _src = pi
    installer(tmp, slots).install(str(tmp / "b.fw"))
    installer(tmp, slots).resume(boot=True)
    assert installer(tmp, slots).rollback().state == "rolled_back"
    assert reboots(tmp)[-1] == ""  # a plain `reboot`
    assert installer(tmp, slots).resume(boot=True).state == "rolled_back"
    assert read_active_version(slots) == OLD


def test_image_larger_than_the_partition_is_refused(tmp_path: Path) -> None:
    slots = make_rpi_rig(tmp_path, partition_bytes=128 << 10)
    key = make_key(tmp_path, "release")
    make_bundle(tmp_path / "b.fw", make_image_tree(tmp_path / "src"), keys=[key])
    with pytest.raises(FirmwareError, match=r"^oversize"):
        installer(tmp_path, slots).install(str(tmp_path / "b.fw"))
    assert read_active_version(slots) == OLD
    assert (tmp_path / "p2.img").read_bytes() == bytes(128 << 10)


def test_payload_other_than_one_image_is_refused(tmp_path: Path) -> None:
    slots = make_rpi_rig(tmp_path)
    key = make_key(tmp_path, "release")
    make_bundle(tmp_path / "b.fw", make_tree(tmp_path / "src"), keys=[key])
    with pytest.raises(FirmwareError, match=r"installs exactly one member, partition\.img|"
                                            r"installs one partition image"):
        installer(tmp_path, slots).install(str(tmp_path / "b.fw"))
    assert read_active_version(slots) == OLD
    assert json.loads((slots / "a" / "manifest.json").read_text())["version"] == OLD
