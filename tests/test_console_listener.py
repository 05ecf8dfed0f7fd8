"""`batm-server run` serves the operator console on its own HTTPS listener: --console-listen
(default the gate's host, port 8444), the server CA's certificate unless --console-cert/-key
give one the operators' browsers trust; server.json says where it is."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from test_console_users import PASSWORD, cli
from test_server_cli import RunningServer, data_dir  # noqa: F401 - the fixture

from batm_common.hostaddr import ServerAddress
from server.settings import DEFAULT_CONSOLE_PORT, ServerSettings


def test_the_console_listens_on_the_gates_host_port_8444_by_default(tmp_path):
    public = ServerSettings(tmp_path, ServerAddress("192.0.2.1", 8443))
    assert public.console_address == ServerAddress("192.0.2.1", DEFAULT_CONSOLE_PORT)
    local = ServerSettings(tmp_path, ServerAddress("127.0.0.1", 0))
    assert local.console_address.port == 0, "tests and development take a free port"


def test_the_api_answers_over_https_with_the_servers_ca(data_dir):  # noqa: F811
    server = RunningServer(data_dir)
    try:
        host, port = server.info["console"].rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) not in (0, int(server.info["gate"].rsplit(
            ":", 1)[1]))
        assert cli(data_dir, "user", "add", "olga", "--role", "viewer", "--locations", "L1",
                   "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
        token = json.loads(cli(data_dir, "token", "create", "olga", "--json").stdout)["token"]
        assert cli(data_dir, "terminal", "create", "HTTPS-1", "--scenario", "B",
                   "--location", "L1").returncode == 0
        with httpx.Client(base_url=f"https://{server.info['console']}",
                          verify=ssl.create_default_context(cafile=data_dir / "ca.pem")) as web:
            assert web.get("/api/v1/terminals").status_code == 401
            listed = web.get("/api/v1/terminals", headers={"Authorization": f"Bearer {token}"})
            assert listed.status_code == 200
            assert [t["serial"] for t in listed.json()["terminals"]] == ["HTTPS-1"]
    finally:
        status, log = server.stop()
    assert status == 0 and "console on https://127.0.0.1:" in log


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "console.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "console.pem", directory / "console.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_console_cert_and_key_are_served(data_dir, tmp_path):  # noqa: F811
    cert, key = _self_signed(tmp_path)
    server = RunningServer(data_dir, args=["--console-cert", str(cert), "--console-key",
                                           str(key)])
    try:
        host, port = server.info["console"].rsplit(":", 1)
        served = ssl.get_server_certificate((host, int(port)))
        assert x509.load_pem_x509_certificate(served.encode()).subject.rfc4514_string() == \
            "CN=console.example"
        with httpx.Client(verify=ssl.create_default_context(cafile=cert)) as web:
            assert web.get(f"https://{server.info['console']}/api/v1/audit").status_code == 401
    finally:
        server.stop()


@pytest.mark.parametrize(("args", "mention"), [
    (["--console-cert", "/nonexistent.pem", "--console-key", "/nonexistent.key"],
     "--console-cert: /nonexistent.pem is not a file"),
    (["--console-cert", "/etc/hostname"], "--console-cert and --console-key go together"),
    (["--console-listen", "127.0.0.1:99999"], "--console-listen"),
])
def test_bad_console_options_are_usage_errors(tmp_path, args, mention):
    result = cli(tmp_path, "run", "--listen", "127.0.0.1:0", *args)
    assert result.returncode == 2 and mention in result.stderr
