"""The master service as the rest of the server sees it: its stores and its link to the broker.

`batm-server run` makes one (server/app.py); the gate and the admin API take it whole, or None
when the server runs no master service.
"""

from __future__ import annotations

from dataclasses import dataclass

from batm_common.hostaddr import ServerAddress
from server.master.accounts import BrokerAccounts
from server.master.archives import Archives
from server.master.commands import Commands
from server.master.link import MasterLink, MasterUnavailable
from server.master.monitoring import Monitoring


@dataclass(frozen=True)
class MasterService:
    monitoring: Monitoring
    commands: Commands
    archives: Archives
    link: MasterLink
    # The fleet's brokers, this replica's own first; empty: one broker (master/assignment.py)
    brokers: tuple[ServerAddress, ...] = ()
    # Revocation across replicas (master/accounts.py); None: grants go to the link directly
    accounts: BrokerAccounts | None = None

    def grant(self, serial: str, password: str) -> None:
        """The terminal's MQTT account on this replica's broker, for its current pairing."""
        (self.accounts or self.link).grant(serial, password)

    def revoke(self, serial: str) -> bool:
        """End the terminal's MQTT access on this replica's broker now; the other replicas
        revoke theirs on hearing of the change (master/accounts.py)."""
        return (self.accounts or self.link).revoke(serial)

    def issue(self, serial: str, command: object, args: object) -> dict:
        """A remote command: its row first, then the message to the terminal; the row says
        "failed" (with why) when the broker could not take it. Unpair is the caller's: its
        revocation is server-side."""
        view = self.commands.create_command(serial, command, args)
        try:
            self.link.send_command(serial, {"id": view["id"], "command": view["command"],
                                            "args": view["args"]})
        except MasterUnavailable as exc:
            self.commands.fail_command(view["id"], str(exc))
        return self.commands.command(serial, view["id"])
