"""Trusted firmware keys and signing keys.

A trusted-keys directory holds one `*.pub` file per Ed25519 public key, either the raw 32 bytes
in base64url (what `batm-firmware keygen` writes) or a PEM SubjectPublicKeyInfo. Several keys may
be trusted at once so the signing key can be rotated: a bundle signed by the old and the new key
installs on terminals that trust either. A key is named by its key id, the first 16 hex digits of
the SHA-256 of the raw public key; each signature in a bundle carries the id of its key.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from batm_common.atomic import atomic_write
from batm_common.signing import b64url, unb64url
from firmware_updater.errors import TrustError

SIGNING_CONTEXT = b"batm-firmware-manifest-v1\n"  # domain separation: no other message verifies


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _load_key(path: Path, what: str, from_pem, key_type: type, from_raw):
    """A key file in PEM or as 32 bytes of base64url; TrustError naming `what` and `path`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustError(f"cannot read {what} {path} ({exc.strerror})") from exc
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = from_pem(data)
            if not isinstance(key, key_type):
                raise TrustError(f"{what} {path} is not an Ed25519 key")
            return key
        raw = unb64url(data.decode("ascii").strip())
        if len(raw) != 32:
            raise TrustError(f"{what} {path} is not 32 bytes of base64url")
        return from_raw(raw)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise TrustError(f"{what} {path} is neither PEM nor base64url ({exc})") from exc


def load_public_key(path: Path) -> Ed25519PublicKey:
    return _load_key(Path(path), "public key", serialization.load_pem_public_key,
                     Ed25519PublicKey, Ed25519PublicKey.from_public_bytes)


def load_trusted_keys(directory: Path | str) -> dict[str, Ed25519PublicKey]:
    directory = Path(directory)
    if not directory.is_dir():
        raise TrustError(f"trusted keys directory {directory} does not exist")
    keys = {}
    for path in sorted(directory.glob("*.pub")):
        key = load_public_key(path)
        keys[key_id(public_raw(key))] = key
    if not keys:
        raise TrustError(f"no trusted keys (*.pub) in {directory}")
    return keys


def load_private_key(path: Path | str) -> Ed25519PrivateKey:
    return _load_key(Path(path), "signing key",
                     lambda data: serialization.load_pem_private_key(data, password=None),
                     Ed25519PrivateKey, Ed25519PrivateKey.from_private_bytes)


def keygen(key_path: Path | str) -> str:
    """Write KEY (PEM PKCS#8, mode 0600) and KEY.pub (raw base64url); return the key id."""
    key_path = Path(key_path)
    pub_path = key_path.with_name(key_path.name + ".pub")
    for path in (key_path, pub_path):
        if path.exists():
            raise TrustError(f"{path} already exists; refusing to overwrite a key")
    if not key_path.parent.is_dir():
        raise TrustError(f"directory {key_path.parent} does not exist")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    atomic_write(key_path, pem, mode=0o600)
    raw = public_raw(key.public_key())
    atomic_write(pub_path, (b64url(raw) + "\n").encode(), mode=0o644)
    return key_id(raw)


def sign_manifest(key: Ed25519PrivateKey, manifest_bytes: bytes) -> tuple[str, bytes]:
    return key_id(public_raw(key.public_key())), key.sign(SIGNING_CONTEXT + manifest_bytes)


def verify_manifest(manifest_bytes: bytes, signatures: list[tuple[str, bytes]],
                    trusted: dict[str, Ed25519PublicKey]) -> str:
    """Return the id of a trusted key whose signature verifies; else say exactly why not."""
    if not signatures:
        raise TrustError("unsigned: the bundle carries no signature")
    bad = []
    for kid, signature in signatures:
        key = trusted.get(kid)
        if key is None:
            continue
        try:
            key.verify(signature, SIGNING_CONTEXT + manifest_bytes)
            return kid
        except InvalidSignature:
            bad.append(kid)
    if bad:
        raise TrustError(
            f"wrong signature: the signature by trusted key {bad[0]} does not match the manifest")
    ids = ", ".join(kid for kid, _ in signatures)
    raise TrustError(
        f"not signed by a trusted key: signed by {ids}; trusted: {', '.join(sorted(trusted))}")
