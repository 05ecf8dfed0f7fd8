"""Protocols: *what* a test may ask, whichever driver answers it.

A test written against TerminalControlProtocol runs the same over the serial console or the agent
CLI; one written against PowerProtocol runs against the simulator's supervisor today and a
power switch on the real rig later.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class TerminalControlProtocol(Protocol):
    """The terminal as a technician sees it: its screen, its status, the server setting."""

    def screen(self) -> dict: ...

    def status(self) -> dict: ...

    def set_server(self, address: str) -> str: ...

    def wait_for_screen(self, screen_id: str, timeout: float = 30.0) -> dict: ...


@runtime_checkable
class PowerProtocol(Protocol):
    """The terminal's power and storage: stop/start its agent, cut power, wipe its credentials."""

    def off(self) -> None: ...

    def on(self) -> None: ...

    def cycle(self) -> None: ...

    def cycle_with_clock_offset(self, seconds: int) -> None: ...

    def cut(self) -> None: ...

    def wipe(self) -> None: ...


@runtime_checkable
class ServiceProtocol(Protocol):
    """The reference server as a service that can be stopped and started (data kept)."""

    def stop_server(self) -> None: ...

    def start_server(self) -> None: ...


@runtime_checkable
class ServerAdminProtocol(Protocol):
    """What the operator does on the server."""

    def create_terminal(self, serial: str, scenario: str = "B", location: str | None = None
                        ) -> dict: ...

    def terminals(self) -> list[dict]: ...

    def pairing_requests(self) -> list[dict]: ...

    def approve(self, serial: str, code: str) -> dict: ...

    def unpair(self, serial: str) -> dict: ...
