"""The booted rig's provisioning: only what a container lacks, and the package's units kept."""

import json
import os

from sim.booted.rootfs import (
    BASE_PACKAGES,
    CONSOLE_UNIT,
    MASKED,
    SERIAL,
    base_key,
    cache_root,
    dependencies,
    provision,
)
from sim.rigfile import load_rig_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def packaged_root(tmp_path):
    root = tmp_path / "root"
    units = root / "lib/systemd/system"
    units.mkdir(parents=True)
    with open(os.path.join(REPO, "systemd", "batm-console@.service")) as f:
        (units / "batm-console@.service").write_text(f.read())
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "batm-console@serial0.service").symlink_to("/lib/systemd/system/batm-console@.service")
    return root


def test_the_console_runs_on_the_container_console_without_a_udev_device(tmp_path):
    root = packaged_root(tmp_path)
    provision(root)
    unit = (root / CONSOLE_UNIT.lstrip("/")).read_text()
    assert "BindsTo=dev-" not in unit and "After=dev-" not in unit
    assert "ExecStartPre=+/bin/chmod 0660 /dev/%I" in unit
    # Everything else is the packaged unit: sandbox, user, command.
    assert "User=batm-agent" in unit and "DeviceAllow=/dev/%I rw" in unit
    wants = sorted(p.name for p in (root / "etc/systemd/system/multi-user.target.wants").iterdir())
    assert wants == ["batm-console@console.service"]


def test_the_display_and_gettys_are_masked_and_the_agent_gets_a_serial_number(tmp_path):
    root = packaged_root(tmp_path)
    provision(root)
    for unit in MASKED:
        assert os.readlink(root / "etc/systemd/system" / unit) == "/dev/null"
    assert (root / "etc/batm/hardware/serial-number").read_text().strip() == SERIAL
    dropin = (root / "etc/systemd/system/batm-agent.service.d/rig.conf").read_text()
    assert "BATM_HARDWARE_DIR=/etc/batm/hardware" in dropin


def test_a_booted_rig_file_is_valid(tmp_path):
    rig = {
        "kind": "booted",
        "server": {"data_dir": str(tmp_path / "server"), "netns": "batmbabcs",
                   "address": "192.0.2.1", "gate": "192.0.2.1:8443"},
        "terminals": [{"serial": SERIAL, "version": 20230801, "state_dir": str(tmp_path / "s"),
                       "netns": "batmbabct", "console": str(tmp_path / "console")}],
    }
    (tmp_path / "rig.json").write_text(json.dumps(rig))
    assert load_rig_file(tmp_path / "rig.json").kind == "booted"


def test_the_base_layer_holds_the_packages_debian_dependencies(tmp_path):
    control = tmp_path / "control"
    control.write_text("Package: batm-terminal\nDepends: python3 (>= 3.11), python3 (<< 3.12), "
                       "systemd,\n wireguard-tools | wireguard, polkitd\nDescription: x\n")
    packages = dependencies(control)
    assert {"python3", "systemd", "wireguard-tools", "polkitd"} <= set(packages)
    assert set(BASE_PACKAGES) <= set(packages)
    assert "wireguard" not in packages  # an alternative's first choice only
    assert packages == sorted(set(packages))  # one of each, in a stable order (the cache key)


def test_the_packaged_control_file_gives_the_base_its_packages():
    assert {"python3", "systemd", "polkitd"} <= set(dependencies())


def test_another_dependency_list_is_another_base_and_the_same_list_the_same():
    assert base_key(["a", "b"]) == base_key(["a", "b"])
    assert base_key(["a", "b"]) != base_key(["a", "b", "c"])


def test_the_cache_lives_outside_the_clone(monkeypatch, tmp_path):
    monkeypatch.delenv("BATM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "batm" / "booted"
    monkeypatch.setenv("BATM_CACHE_DIR", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c" / "booted"
