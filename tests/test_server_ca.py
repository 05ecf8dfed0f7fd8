"""The server's CA and leaf certificate: made once, reused, re-issued only for new names."""

from __future__ import annotations

import ipaddress

from cryptography import x509

from server.ca import ensure_certificates, leaf_spki_der
from server.local_addresses import default_advertised


def _sans(path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} | set(
        san.get_values_for_type(x509.DNSName))


def test_first_start_makes_a_private_ca_and_a_leaf_it_signed(tmp_path):
    certs = ensure_certificates(tmp_path, ["127.0.0.1", "localhost", "gate.example"])
    for secret in ("ca.key", "server.key"):
        assert (tmp_path / secret).stat().st_mode & 0o777 == 0o600
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    leaf = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    leaf.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert _sans(tmp_path / "server.pem") == {"127.0.0.1", "localhost", "gate.example"}
    assert certs.ca_pem == (tmp_path / "ca.pem").read_text()
    assert certs.leaf_spki_der == leaf_spki_der(tmp_path)


def test_restart_reuses_everything(tmp_path):
    ensure_certificates(tmp_path, ["127.0.0.1"])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    ensure_certificates(tmp_path, ["127.0.0.1"])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_new_addresses_reissue_the_leaf_for_the_same_key(tmp_path):
    first = ensure_certificates(tmp_path, ["127.0.0.1"])
    ca_before = (tmp_path / "ca.pem").read_bytes()
    second = ensure_certificates(tmp_path, ["127.0.0.1", "192.0.2.10"])
    assert "192.0.2.10" in _sans(tmp_path / "server.pem")
    assert second.leaf_spki_der == first.leaf_spki_der  # terminals' pins still hold
    assert (tmp_path / "ca.pem").read_bytes() == ca_before


def test_default_names_cover_loopback_and_the_machine(tmp_path):
    assert default_advertised("127.0.0.1") == ["127.0.0.1", "localhost"]
    everything = default_advertised("0.0.0.0")
    assert "127.0.0.1" in everything and "localhost" in everything
    for entry in everything:
        if entry != "localhost":
            ipaddress.ip_address(entry)
    assert default_advertised("192.0.2.5")[0] == "192.0.2.5"
