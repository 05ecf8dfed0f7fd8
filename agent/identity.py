"""The terminal's identity key: made on the device, never leaves it (mode 0600)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from batm_common.atomic import atomic_write
from batm_common.quarantine import Replacement, quarantine
from batm_common.signing import fingerprint

log = logging.getLogger(__name__)
FILENAME = "identity.key"


@dataclass(frozen=True)
class Identity:
    private_key: Ed25519PrivateKey

    @property
    def public_raw(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_raw)


def load_or_create(state_dir: Path) -> Identity:
    path = Path(state_dir) / FILENAME
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError("not an Ed25519 key")
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
            return Identity(key)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            # A damaged key cannot be repaired; a new one means pairing again, which is safe.
            quarantine(path, f"not a usable Ed25519 private key ({exc})", Replacement.RECREATED)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    atomic_write(path, pem, mode=0o600)
    log.info("made a new identity key")
    return Identity(key)
