"""Issue 13, item 3: the log-upload route checks who is asking before it reads the body, streams
the body to disk within its bound, and keeps nothing that does not match the signed digest.

The attack: a POST announcing 60 MiB with a garbage signature. The server must answer 401 while
the attacker has sent only the headers; before the fix it waited for (and buffered) the body.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import time

import test_server_gate as rig
from test_server_gate import assert_error, create, pair

from batm_common.signing import HEADER_CONTENT_SHA256, sign_headers
from server.paths import ARCHIVES_DIR

ANNOUNCED = 60 * 1024 * 1024
# The gate rig's fixtures (a server thread, its gate and admin clients).
short_dir, server, gate, admin = rig.short_dir, rig.server, rig.gate, rig.admin


def headers_only(server, path: str, headers: dict[str, str], length: int) -> tuple[int, dict]:
    """Send a POST's headers and not one byte of its body; (status, JSON) of the answer."""
    context = ssl.create_default_context(cafile=str(server.data_dir / "ca.pem"))
    address = server.gate_address
    with socket.create_connection(("127.0.0.1", address.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{address.port}",
                 "Content-Type: application/gzip", f"Content-Length: {length}",
                 *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        tls.sendall("\r\n".join(lines).encode())
        answer = b""
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in answer or not _complete(answer):
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer while the body was withheld: {answer!r}")
            try:
                chunk = tls.recv(65536)
            except TimeoutError as exc:
                raise AssertionError("no answer while the body was withheld") from exc
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def retrieve_logs(admin, serial: str) -> str:
    answer = admin.post(f"/api/v1/terminals/{serial}/commands", json={
        "command": "retrieve_logs",
        "args": {"since": "2024-01-01T00:00:00Z", "until": "2030-01-01T00:00:00Z",
                 "max_size": 4096}})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def test_a_bad_signature_is_refused_before_the_body_is_read(server, gate, admin):
    create(admin, "T-1")
    terminal = pair(server, gate, admin, "T-1")
    command_id = retrieve_logs(admin, "T-1")
    path = f"/api/v1/logs/{command_id}"
    garbage = {"X-BATM-Serial": "T-1", "X-BATM-Timestamp": str(int(time.time())),
               "X-BATM-Signature": "A" * 86, HEADER_CONTENT_SHA256: "0" * 64}
    status, body = headers_only(server, path, garbage, ANNOUNCED)
    assert (status, body["error"]) == (401, "bad_signature"), body
    # Validly signed but announcing more than the command's max_size: 413, still body unread.
    signed = sign_headers(terminal.key, "T-1", "POST", path, b"x" * ANNOUNCED)
    status, body = headers_only(server, path, signed, ANNOUNCED)
    assert (status, body["error"]) == (413, "too_large"), body


def test_a_body_that_does_not_match_its_signed_digest_is_not_kept(server, gate, admin):
    create(admin, "T-1")
    terminal = pair(server, gate, admin, "T-1")
    command_id = retrieve_logs(admin, "T-1")
    path = f"/api/v1/logs/{command_id}"
    headers = sign_headers(terminal.key, "T-1", "POST", path, b"the signed archive")
    swapped = gate.post(path, content=b"another archive", headers=headers)
    assert_error(swapped, 401, "bad_signature", "SHA-256")
    archives = server.data_dir / ARCHIVES_DIR
    assert not archives.exists() or list(archives.iterdir()) == []
    stored = terminal.signed("POST", path, b"the signed archive")
    assert stored.status_code == 201, stored.text
    assert stored.json()["sha256"] == hashlib.sha256(b"the signed archive").hexdigest()
    assert [p.suffix for p in archives.iterdir()] == [".gz"]  # no .part left behind
