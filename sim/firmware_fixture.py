"""The simulated rig's firmware: a signing key, two tiny signed bundles, the server's catalog.

    D/firmware-keys/sim.key, sim.key.pub    the rig's firmware signing key (made once per D)
    D/firmware/<version>.fw                 the bundles, rebuilt by every `up` (a few KB each)
    D/server/firmware-keys/sim.key.pub      the server trusts it (`firmware add` checks it)
    D/<serial>/slots/trusted-keys/          each terminal trusts it (agent/upgrade/adapter.py)

The catalog makes the seed's upgrade paths (architecture §2): 20210315 is installable from
≤ 20190130 and 20230801 from 20190131..20230731, so an old terminal takes one step to 20230801
and an archaic one two (→ 20210315 → 20230801). The payload is a few files (~60 KB): the
simulator runs the same agent code whatever the slot holds; what changes is the slot's manifest
version.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from firmware_updater.bundle import add_signature, build
from firmware_updater.manifest import VersionRange
from firmware_updater.trust import keygen, load_private_key
from sim.layout import HARDWARE, Layout, TerminalSpec

KEY_NAME = "sim.key"
CHUNK = 4096
BUNDLES = (
    (20210315, "-20190130"),
    (20230801, "20190131-20230731"),
)


def signing_key(layout: Layout) -> Path:
    keys = layout.dir / "firmware-keys"
    keys.mkdir(parents=True, exist_ok=True)
    key = keys / KEY_NAME
    if not key.exists():
        keygen(key)
    return key


def build_bundles(layout: Layout, key_path: Path) -> list[Path]:
    out_dir = layout.dir / "firmware"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    key = load_private_key(key_path)
    bundles = []
    for version, install_from in BUNDLES:
        src = out_dir / f"src-{version}"
        (src / "bin").mkdir(parents=True)
        (src / "app.py").write_text(f"VERSION = {version}\n")
        (src / "bin" / "batm-agent").write_text("#!/bin/sh\nexec python3 -m agent.cli \"$@\"\n")
        (src / "bin" / "batm-agent").chmod(0o755)
        # Some bulk, so that a throttled link streams for a while (power-cut tests).
        (src / "data.bin").write_bytes(hashlib.sha256(str(version).encode()).digest() * 1536)
        out = out_dir / f"{version}.fw"
        build(src, out, version, [HARDWARE], [VersionRange.parse(install_from)],
              chunk_size=CHUNK)
        add_signature(out, key)
        shutil.rmtree(src)
        bundles.append(out)
    return bundles


def prepare_firmware(layout: Layout, terminals: list[TerminalSpec],
                     database: str | None = None) -> list[Path]:
    """Key, bundles, trusted keys on server and terminals, and the server's catalog."""
    from server.db.engine import close_database, open_database
    from server.firmware.catalog import Catalog, copy_keys

    key = signing_key(layout)
    public = key.with_name(key.name + ".pub")
    for spec in terminals:
        trusted = layout.slots_dir(spec.serial) / "trusted-keys"
        trusted.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(public, trusted / public.name)
    layout.server_data.mkdir(parents=True, exist_ok=True)
    copy_keys([public], layout.server_data)
    bundles = build_bundles(layout, key)
    sessions = open_database(layout.server_data, database)
    try:
        catalog = Catalog(sessions, layout.server_data)
        for bundle in bundles:
            catalog.add(bundle)
    finally:
        close_database(sessions)
    return bundles
