"""The terminal's WireGuard key: X25519, made on the device, never sent anywhere.

state_dir/wg-private.key (base64, 0600, written atomically). Only the public key leaves the
terminal, in its signed check-in. Unpair forgets the key: the next pairing makes a new one, so a
key the operator revoked is never offered again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from wireguard_tools import WireguardKey

from batm_common.atomic import atomic_write
from batm_common.quarantine import Replacement, quarantine

log = logging.getLogger(__name__)

KEY_FILE = "wg-private.key"


def load_or_create(state_dir: Path) -> WireguardKey:
    path = Path(state_dir) / KEY_FILE
    try:
        key = WireguardKey(path.read_text().strip())
        if key:
            return key
        quarantine(path, "it holds an all-zero key", Replacement.RECREATED)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        # A new key only costs a check-in: the signed check-in carries the new public key.
        quarantine(path, f"not a WireGuard private key ({exc})", Replacement.RECREATED)
    key = WireguardKey.generate()
    atomic_write(path, (str(key) + "\n").encode(), mode=0o600)
    log.info("made a new WireGuard key (public %s)", key.public_key())
    return key


def forget(state_dir: Path) -> None:
    (Path(state_dir) / KEY_FILE).unlink(missing_ok=True)
