"""The server's own certificate authority and its TLS leaf certificate (docs/protocol.md §2).

Made once, at first start, in the data dir: ca.key/ca.pem and server.key/server.pem. Restarts
reuse them, because paired terminals pin the leaf *key* and verify the chain against the CA they
received in the hello: a new key would show every terminal "SERVER CERTIFICATE MISMATCH".

When the advertised addresses change, only the leaf *certificate* is re-issued, for the same key
and by the same CA, so pins keep holding.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from batm_common.atomic import atomic_write

log = logging.getLogger(__name__)

CA_KEY = "ca.key"
CA_CERT = "ca.pem"
LEAF_KEY = "server.key"
LEAF_CERT = "server.pem"
# No renewal protocol exists yet, and an expired certificate would strand every terminal:
# long lifetimes are the lesser evil for a private CA whose trust is pinned anyway.
CA_LIFETIME = datetime.timedelta(days=20 * 365)
LEAF_LIFETIME = datetime.timedelta(days=10 * 365)


class CertificateError(Exception):
    """The stored certificate files cannot be used; str() says which and why."""


@dataclass(frozen=True)
class ServerCertificates:
    ca_cert_path: Path
    leaf_cert_path: Path
    leaf_key_path: Path
    ca_pem: str  # what the hello answer carries
    leaf_spki_der: bytes  # what terminals see in the handshake: an input of the pairing code


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CertificateError(f"cannot read the private key {path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{path} is not an EC private key")
    return key


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CertificateError(f"cannot read the certificate {path}: {exc}") from exc


def _general_name(entry: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(entry))
    except ValueError:
        return x509.DNSName(entry)


def _make_ca(data_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "batm-server CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    # The key first: a crash between the two writes leaves a key without a certificate, which
    # the next start treats as "no CA yet" rather than a certificate whose key is lost.
    atomic_write(data_dir / CA_KEY, _key_pem(key), mode=0o600)
    atomic_write(data_dir / CA_CERT, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    log.info("made a new certificate authority in %s", data_dir / CA_CERT)
    return key, cert


def _issue_leaf(
    data_dir: Path,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    leaf_key: ec.EllipticCurvePrivateKey,
    names: list[str],
) -> None:
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "batm-server")]))
        .issuer_name(ca_cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + LEAF_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    atomic_write(data_dir / LEAF_CERT, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    log.info("issued the server certificate for %s", ", ".join(names))


def _san_entries(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} | set(
        san.get_values_for_type(x509.DNSName)
    )


def _leaf_still_good(
    leaf: x509.Certificate,
    leaf_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    names: list[str],
) -> bool:
    if leaf.public_key() != leaf_key.public_key():
        return False
    try:
        leaf.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if leaf.not_valid_after_utc < _now() + datetime.timedelta(days=30):
        return False
    return set(names) <= _san_entries(leaf)


def ensure_certificates(data_dir: Path, names: list[str]) -> ServerCertificates:
    """Load or make the CA and the leaf; the leaf covers `names` (IP addresses or host names)."""
    data_dir = Path(data_dir)
    ca_key_path, ca_cert_path = data_dir / CA_KEY, data_dir / CA_CERT
    leaf_key_path, leaf_cert_path = data_dir / LEAF_KEY, data_dir / LEAF_CERT

    if ca_key_path.exists() and ca_cert_path.exists():
        ca_key, ca_cert = _load_key(ca_key_path), _load_cert(ca_cert_path)
        if ca_cert.public_key() != ca_key.public_key():
            raise CertificateError(f"{ca_cert_path} does not belong to the key {ca_key_path}")
    else:
        ca_key, ca_cert = _make_ca(data_dir)

    if leaf_key_path.exists():
        leaf_key = _load_key(leaf_key_path)
    else:
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        atomic_write(leaf_key_path, _key_pem(leaf_key), mode=0o600)
        log.info("made a new server key in %s", leaf_key_path)

    leaf = _load_cert(leaf_cert_path) if leaf_cert_path.exists() else None
    if leaf is None or not _leaf_still_good(leaf, leaf_key, ca_cert, names):
        _issue_leaf(data_dir, ca_key, ca_cert, leaf_key, names)

    return ServerCertificates(
        ca_cert_path=ca_cert_path,
        leaf_cert_path=leaf_cert_path,
        leaf_key_path=leaf_key_path,
        ca_pem=ca_cert_path.read_text(),
        leaf_spki_der=leaf_spki_der(data_dir),
    )


def leaf_spki_der(data_dir: Path) -> bytes:
    """The leaf's DER SubjectPublicKeyInfo: what terminals see in the handshake and pin."""
    cert = _load_cert(Path(data_dir) / LEAF_CERT)
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
