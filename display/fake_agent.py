"""A stand-in for the agent's control socket, for developing and testing the display alone.

    python -m display.fake_agent --state-dir D [--interval 2]

serves D/control.sock like the real agent (docs/protocol.md §4: "ping", "screen", "subscribe")
and walks through display.preview.SAMPLES, one screen every --interval seconds, so
`batm-display --state-dir D` can be watched cycling through every screen.  The tests use the
FakeAgent class directly: publish() a model and every subscriber receives it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

from batm_common.control_commands import ControlCommand


class FakeAgent:
    def __init__(self, socket_path: Path | str, screen: dict | None = None):
        self.socket_path = Path(socket_path)
        self._screen = dict(screen or {"screen": "connecting", "seq": 1})
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.subscribes = 0

    def start(self) -> FakeAgent:
        self.socket_path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.socket_path))
        server.listen(8)
        self._server = server
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every client, and remove the socket: like the agent dying."""
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
                client.close()
            self._clients.clear()
        if self._thread is not None:
            self._thread.join(2)
        self.socket_path.unlink(missing_ok=True)

    def publish(self, screen: dict) -> None:
        """Make screen the current model and push it to every subscriber."""
        line = (json.dumps({"event": "screen", "screen": screen}) + "\n").encode()
        with self._lock:
            self._screen = dict(screen)
            for client in list(self._clients):
                try:
                    client.sendall(line)
                except OSError:
                    self._clients.remove(client)
                    client.close()

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are to every subscriber (for malformed-input tests)."""
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError):
                    client.sendall(data)

    def _accept_loop(self) -> None:
        server = self._server
        while server is not None:
            try:
                client, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        reader = client.makefile("rb")
        try:
            for line in reader:
                try:
                    request = json.loads(line)
                    cmd = request.get("cmd")
                except (ValueError, AttributeError):
                    client.sendall(b'{"ok": false, "error": "request is not a JSON object"}\n')
                    continue
                with self._lock:
                    if cmd == ControlCommand.SUBSCRIBE:
                        answer = {"ok": True, "screen": self._screen}
                        client.sendall((json.dumps(answer) + "\n").encode())
                        self._clients.append(client)
                        self.subscribes += 1
                        continue
                    if cmd == ControlCommand.PING:
                        answer = {"ok": True}
                    elif cmd == "screen":
                        answer = {"ok": True, "screen": self._screen}
                    else:
                        answer = {"ok": False, "error": f"unknown command {cmd!r}"}
                client.sendall((json.dumps(answer) + "\n").encode())
        except OSError:
            pass
        finally:
            with self._lock:
                if client in self._clients:
                    self._clients.remove(client)
            client.close()


def main(argv: list[str] | None = None) -> int:
    from display.preview import SAMPLES

    parser = argparse.ArgumentParser(description="serve sample screens on a control socket")
    parser.add_argument("--state-dir", type=Path,
                        default=Path(os.environ.get("BATM_STATE_DIR") or "."))
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    samples = list(SAMPLES.values())
    agent = FakeAgent(args.state_dir / "control.sock", samples[0]).start()
    print(f"fake agent on {agent.socket_path}; Ctrl-C to stop", flush=True)
    try:
        seq = 1
        while True:
            for sample in samples:
                agent.publish({**sample, "seq": seq, "changed_at": time.time()})
                seq += 1
                time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    finally:
        agent.stop()


if __name__ == "__main__":
    sys.exit(main())
