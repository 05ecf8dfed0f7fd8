"""Strategies: bring a terminal to a named state, however it starts (labgrid's Strategy).

PairingStrategy states, in order:

    created       the server knows the terminal (created if it was not; in scenario A
                  with its VPN configuration generated, as the guide says)
    pairing_code  the terminal shows its pairing code and the server holds the matching request
    in_service    the request was approved with the code and the terminal shows in_service
"""

from __future__ import annotations

from dataclasses import dataclass

from hil_tests.rig.target import Target

STATES = ("created", "pairing_code", "in_service")


@dataclass
class PairingResult:
    code: str | None = None
    server_code: str | None = None
    request_id: str | None = None


class PairingStrategy:
    def __init__(self, target: Target, scenario: str = "B", timeout: float = 30.0):
        self.target = target
        self.scenario = scenario
        self.timeout = timeout
        self.result = PairingResult()

    def transition(self, state: str) -> PairingResult:
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}; states: {', '.join(STATES)}")
        t = self.target
        if t.server.terminal(t.serial) is None:
            t.server.create_terminal(t.serial, self.scenario)
            if self.scenario == "A":
                t.server.generate_vpn(t.serial)
        if state == "created":
            return self.result
        self.to_pairing_code()
        if state == "in_service":
            t.server.approve(t.serial, self.result.code)
            t.console.wait_for_screen("in_service", self.timeout)
        return self.result

    def to_pairing_code(self, previous_request: str | None = None) -> PairingResult:
        """Set the server over the serial console and wait for the code on both sides."""
        t = self.target
        t.console.set_server(t.gate)
        screen = t.console.wait_for_screen("pairing_code", self.timeout)
        request = t.server.wait_for_pairing_request(
            t.serial, self.timeout, not_request=previous_request
        )
        self.result = PairingResult(
            code=screen["pairing_code"], server_code=request["code"],
            request_id=request["request_id"],
        )
        if self.result.code != self.result.server_code:
            raise AssertionError(
                f"the terminal shows {self.result.code} but the server's request has "
                f"{self.result.server_code}"
            )
        return self.result
