"""Issue 13, item 8: the broker's TLS listeners accept AEAD suites only, as the gate does.

`openssl s_client` offers exactly one TLS 1.2 suite; CBC with SHA-1 must fail the handshake on
both the terminals' listener and the tunnel listener, and an AEAD suite must succeed.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from test_broker_client_ids import TUNNEL, Rig


@pytest.fixture
def rig(tmp_path):
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed (Debian package 'openssl')")
    rig = Rig(tmp_path, TUNNEL)
    try:
        yield rig
    finally:
        rig.stop()


def handshake(rig: Rig, host: str, cipher: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"{host}:{rig.broker.mqtt_port}", "-tls1_2",
         "-cipher", cipher, "-CAfile", str(rig.certs.ca_cert_path)],
        input=b"", capture_output=True, timeout=20)


@pytest.mark.parametrize("host", ["127.0.0.1", TUNNEL])
def test_cbc_sha1_is_refused_and_aead_accepted(rig, host):
    refused = handshake(rig, host, "ECDHE-ECDSA-AES128-SHA")
    assert refused.returncode != 0, refused.stdout[-500:]
    accepted = handshake(rig, host, "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert accepted.returncode == 0, accepted.stderr[-500:]
    assert b"ECDHE-ECDSA-AES128-GCM-SHA256" in accepted.stdout
