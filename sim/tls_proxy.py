"""A TLS-intercepting proxy: the man in the middle the pairing code exists to expose.

    python -m sim.tls_proxy --listen HOST:PORT --upstream HOST:PORT --cert-dir DIR [--mode M]

It terminates the terminal's TLS with a key and certificate of its own (made once in DIR) and
opens a fresh TLS connection to the upstream gate without verifying it, then relays the
decrypted HTTP. Two modes:

``rewrite-ca`` (default)
    what a competent attacker does: its leaf is issued by its own CA, and it replaces the
    "ca_cert" the gate's hello answer carries with that CA, so the terminal's "leaf issued by
    the CA it was sent" check passes. The terminal then shows a pairing code computed with the
    proxy's key, the server one computed with its own: the two codes differ.
``relay``
    byte-level relay of the decrypted streams. The terminal notices that the leaf is not issued
    by the CA in the hello answer and shows certificate_mismatch.

Traffic goes only where --upstream says; the HIL suite runs it inside the rig's server namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import signal
import ssl
import sys
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

MAX_HEADER = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(cert_dir: Path, host: str) -> tuple[Path, Path, bytes]:
    """The proxy's CA and a leaf for `host` issued by it; returns (leaf.pem, leaf.key, CA PEM)."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    leaf_pem, leaf_key, ca_pem = cert_dir / "leaf.pem", cert_dir / "leaf.key", cert_dir / "ca.pem"
    if leaf_pem.exists() and leaf_key.exists() and ca_pem.exists():
        return leaf_pem, leaf_key, ca_pem.read_bytes()
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Interceptor CA"))
        .issuer_name(_name("Interceptor CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    leaf_key.chmod(0o600)
    leaf_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return leaf_pem, leaf_key, ca_pem.read_bytes()


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailer fields
                return body
            body += (await reader.readexactly(size + 2))[:-2]
            if len(body) > MAX_BODY:
                raise ValueError("response body too large")
    if "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_BODY:
            raise ValueError("response body too large")
        return await reader.readexactly(length)
    if headers.get("connection", "").lower() == "close":
        return await reader.read(MAX_BODY)
    return b""


def rewrite_ca(body: bytes, ca_pem: bytes) -> bytes:
    """Replace the "ca_cert" of a JSON answer with ours; anything else passes unchanged."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, dict) and "ca_cert" in data:
        data["ca_cert"] = ca_pem.decode()
        return json.dumps(data).encode()
    return body


async def relay_responses(upstream: asyncio.StreamReader, client: asyncio.StreamWriter,
                          ca_pem: bytes) -> None:
    """Upstream → client, one HTTP response at a time, rewriting the CA in JSON bodies."""
    while True:
        try:
            head = await upstream.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        body = rewrite_ca(await _read_body(upstream, headers), ca_pem)
        kept = [ln for ln in lines[1:] if ln and ln.split(":", 1)[0].strip().lower()
                not in ("content-length", "transfer-encoding")]
        out = "\r\n".join([lines[0], *kept, f"content-length: {len(body)}", "", ""])
        client.write(out.encode("latin-1") + body)
        await client.drain()


async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while data := await source.read(65536):
        sink.write(data)
        await sink.drain()


class Proxy:
    """One asyncio loop does all TLS work: an SSL object must never be read and written from
    two threads at once, which a thread-per-direction relay would do."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int], cert_dir: Path,
                 mode: str = "rewrite-ca"):
        self.listen = listen
        self.upstream = upstream
        self.mode = mode
        leaf_pem, leaf_key, self.ca_pem = make_certificates(cert_dir, listen[0])
        self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_context.load_cert_chain(leaf_pem, leaf_key)
        self.client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.client_context.check_hostname = False
        self.client_context.verify_mode = ssl.CERT_NONE  # an interceptor does not care
        self.ready = threading.Event()
        self.error: OSError | None = None

    def serve_forever(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        try:
            server = await asyncio.start_server(
                self.handle, self.listen[0], self.listen[1], ssl=self.server_context
            )
        except OSError as exc:
            self.error = exc
            self.ready.set()
            raise
        self.ready.set()
        async with server:
            await server.serve_forever()

    async def handle(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(
                self.upstream[0], self.upstream[1], ssl=self.client_context,
                server_hostname=self.upstream[0]), timeout=10)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            print(f"tls_proxy: cannot reach the upstream: {exc}", file=sys.stderr, flush=True)
            client_writer.close()
            return
        back = (pipe(up_reader, client_writer) if self.mode == "relay"
                else relay_responses(up_reader, client_writer, self.ca_pem))
        tasks = [asyncio.ensure_future(pipe(client_reader, up_writer)),
                 asyncio.ensure_future(back)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in (client_writer, up_writer):
                writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.tls_proxy", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--listen", type=_host_port, required=True)
    parser.add_argument("--upstream", type=_host_port, required=True)
    parser.add_argument("--cert-dir", type=Path, required=True)
    parser.add_argument("--mode", choices=["rewrite-ca", "relay"], default="rewrite-ca")
    args = parser.parse_args(argv)
    proxy = Proxy(args.listen, args.upstream, args.cert_dir, args.mode)
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # the serving thread inherits the mask
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    proxy.ready.wait()
    if proxy.error is not None:
        print(f"tls_proxy: cannot listen on {args.listen}: {proxy.error}", file=sys.stderr)
        return 1
    print(f"tls_proxy: {args.mode} {args.listen} -> {args.upstream}", flush=True)
    signal.sigwait(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
