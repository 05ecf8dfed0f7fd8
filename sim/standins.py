"""Stand-in processes for testing the rig machinery without the product.

`batm-sim up --stand-ins` runs these instead of batm-server/agent/console/display. They show the
same readiness signals (server.json + an admin socket answering HTTP, a control socket answering
JSON lines, a serial console answering lines) and nothing else. BATM_SIM_STANDIN_FAIL=agent (or
server, console, display; comma-separated) makes that stand-in exit at once, for tests of a failed
bring-up: tests of the supervisor, the
namespaces and cleanup use them, so those tests do not wait on the real components.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path


def _unix_server(path: Path, handler: type[socketserver.BaseRequestHandler]):
    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    path.unlink(missing_ok=True)
    return Server(str(path), handler)


def run_server(data_dir: Path, listen: str) -> None:
    host, port = listen.rsplit(":", 1)
    gate = socket.create_server((host, int(port)))  # proves the address exists in the namespace

    class Admin(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            body = b"[]"
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 2\r\nConnection: close\r\n\r\n" + body)

    admin = _unix_server(data_dir / "admin.sock", Admin)
    info = {"pid": os.getpid(), "gate": listen, "admin_socket": str(data_dir / "admin.sock")}
    (data_dir / "server.json").write_text(json.dumps(info))
    threading.Thread(target=_accept_and_close, args=(gate,), daemon=True).start()
    admin.serve_forever()


def _accept_and_close(sock: socket.socket) -> None:
    while True:
        conn, _ = sock.accept()
        conn.close()


def run_agent(state_dir: Path, hardware_dir: Path) -> None:
    serial = (hardware_dir / "serial-number").read_text().strip()
    screen = {"screen": "set_server", "serial": serial, "server": None, "pairing_code": None,
              "seq": 1, "changed_at": time.time()}
    started = time.time()

    class Control(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                request = json.loads(line)
                cmd = request.get("cmd")
                if cmd == "ping":
                    answer = {"ok": True}
                elif cmd in ("screen", "subscribe"):
                    answer = {"ok": True, "screen": screen}
                elif cmd == "status":
                    answer = {"ok": True, "status": {
                        "serial": serial, "screen": screen["screen"], "server": screen["server"],
                        "paired": False, "pid": os.getpid(), "uptime": time.time() - started,
                        "wall_time": time.time()}}  # lets rig tests see a clock offset
                elif cmd == "set_server":
                    screen.update(server=request.get("address"), screen="connecting",
                                  seq=screen["seq"] + 1, changed_at=time.time())
                    answer = {"ok": True, "server": screen["server"]}
                else:
                    answer = {"ok": False, "error": f"unknown cmd {cmd!r}"}
                self.wfile.write(json.dumps(answer).encode() + b"\n")

    server = _unix_server(state_dir / "control.sock", Control)
    server.serve_forever()


def run_console(port: str) -> None:
    with open(port, "r+b", buffering=0) as tty:
        buffer = b""
        while True:
            chunk = tty.read(256)
            if not chunk:
                time.sleep(0.05)
                continue
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                tty.write(json.dumps({"ok": True, "echo": line.decode().strip()}).encode() + b"\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sim.standins")
    parser.add_argument("role", choices=["server", "agent", "console", "display"])
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    opts = argparse.ArgumentParser()
    for flag in ("--data-dir", "--listen", "--state-dir", "--hardware-dir", "--slots-dir",
                 "--retry-max", "--port", "--screenshot-dir", "--size"):
        opts.add_argument(flag)
    known, _ = opts.parse_known_args([a for a in args.rest if a != "run"])
    if args.role in os.environ.get("BATM_SIM_STANDIN_FAIL", "").split(","):
        print(f"stand-in {args.role} failing on purpose (BATM_SIM_STANDIN_FAIL)", flush=True)
        return 3
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        if args.role == "server":
            run_server(Path(known.data_dir), known.listen)
        elif args.role == "agent":
            run_agent(Path(known.state_dir), Path(known.hardware_dir))
        elif args.role == "console":
            run_console(known.port)
        else:
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
