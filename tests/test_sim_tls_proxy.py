"""sim.tls_proxy on loopback: it terminates TLS with its own key, rewrites the gate's CA in JSON
answers (rewrite-ca mode) or relays bytes (relay mode)."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from sim.readiness import free_port
from sim.tls_proxy import Proxy, make_certificates, rewrite_ca

UPSTREAM_CA = "-----BEGIN CERTIFICATE-----\nupstream\n-----END CERTIFICATE-----\n"


class Gate(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        sent = json.loads(self.rfile.read(length) or b"{}")
        body = json.dumps({"status": "pairing", "ca_cert": UPSTREAM_CA, "echo": sent}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def upstream(tmp_path: Path):
    leaf, key, _ = make_certificates(tmp_path / "upstream-certs", "127.0.0.1")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Gate)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], leaf.read_bytes()
    server.shutdown()


def _start_proxy(tmp_path: Path, upstream_port: int, mode: str) -> tuple[int, Proxy]:
    port = free_port()
    proxy = Proxy(("127.0.0.1", port), ("127.0.0.1", upstream_port), tmp_path / "proxy", mode)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    assert proxy.ready.wait(10) and proxy.error is None
    return port, proxy


def _peer_cert(response: httpx.Response) -> x509.Certificate:
    ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
    return x509.load_der_x509_certificate(ssl_object.getpeercert(True))


@pytest.mark.parametrize("mode", ["rewrite-ca", "relay"])
def test_proxy_intercepts(tmp_path: Path, upstream, mode: str) -> None:
    upstream_port, upstream_pem = upstream
    port, proxy = _start_proxy(tmp_path, upstream_port, mode)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with httpx.Client(verify=context, base_url=f"https://127.0.0.1:{port}") as client:
        for n in range(3):  # keep-alive: several requests on one connection
            response = client.post("/api/v1/hello", json={"n": n})
            assert response.status_code == 200
            data = response.json()
            assert data["echo"] == {"n": n}
            leaf = _peer_cert(response)
            assert leaf != x509.load_pem_x509_certificate(upstream_pem)
            if mode == "rewrite-ca":
                ca = x509.load_pem_x509_certificate(data["ca_cert"].encode())
                leaf.verify_directly_issued_by(ca)  # what the terminal checks: passes
                assert data["ca_cert"] == proxy.ca_pem.decode()
            else:
                assert data["ca_cert"] == UPSTREAM_CA


def test_rewrite_ca_leaves_other_bodies_alone() -> None:
    assert rewrite_ca(b"not json", b"CA") == b"not json"
    assert rewrite_ca(b'{"status": "pending"}', b"CA") == b'{"status": "pending"}'
    assert json.loads(rewrite_ca(b'{"ca_cert": "x"}', b"CA")) == {"ca_cert": "CA"}
