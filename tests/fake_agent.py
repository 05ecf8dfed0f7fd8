"""Shared test double: a fake agent behind a REAL control socket.

The CLI, console and control-socket tests all need an agent that answers the protocol of
docs/protocol.md §4 without pairing anything; this is that agent, once.
"""

from __future__ import annotations

from pathlib import Path

from agent.control.screen_bus import ScreenBus
from agent.control.server import ControlServerThread
from batm_common.hostaddr import AddressError, parse_server_address

BLOCKED_HOST = "blocked.example"  # set_server refuses it, as a backend may refuse any address


def screen(screen_id: str, **fields: object) -> dict:
    return {"screen": screen_id, "title": screen_id.replace("_", " ").title(), "text": "",
            "pairing_code": None, **fields}


class FakeBackend:
    """The daemon's side of the control socket (agent.control.server.ControlBackend)."""

    def __init__(self, first: str = "connecting") -> None:
        self.bus = ScreenBus(screen(first))
        self.server: str | None = None
        self.broken = False  # status() raises, as a daemon with a damaged store might
        self.paired = False  # a paired terminal's set_server needs the admin PIN (no admin here)

    def status(self) -> dict:
        if self.broken:
            raise RuntimeError("the settings file is unreadable")
        return {"serial": "T-0042", "version": 20230801, "state": "awaiting_approval",
                "screen": self.bus.current["screen"], "server": self.server, "paired": self.paired,
                "server_key_fingerprint": "0123456789abcdef", "pid": 4242, "uptime": 3725}

    def set_server(self, address: str) -> str:
        parsed = parse_server_address(address)
        if parsed.host == BLOCKED_HOST:
            raise AddressError("this server is on the block list")
        self.server = str(parsed)
        return self.server


class FakeAgent:
    """A fake agent that can be stopped and started again at the same state dir."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.backend = FakeBackend()
        self.thread: ControlServerThread | None = None

    def start(self, first: str = "connecting") -> FakeAgent:
        self.backend = FakeBackend(first)
        self.thread = ControlServerThread(self.state_dir / "control.sock", self.backend).start()
        return self

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None

    def publish(self, model: dict) -> None:
        assert self.thread is not None
        self.thread.call(self.backend.bus.publish, model)

    def subscribers(self) -> int:
        if self.thread is None:
            return 0
        return self.thread.call(lambda: self.backend.bus.subscriber_count)
