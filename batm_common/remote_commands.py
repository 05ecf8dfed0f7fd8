"""The remote commands (docs/protocol.md, master service): what the server may ask a terminal.

One definition: the server issues these names on terminals/<serial>/commands, the agent carries
them out and answers on …/results, and the operator's tools offer them. A command is
{"id", "command", "args"}; its result is {"command_id", "ok", "error"?, "result"?}.
"""

from __future__ import annotations

from enum import StrEnum


class RemoteCommand(StrEnum):
    UNPAIR = "unpair"                # drop credentials (and VPN), back to the pairing-code screen
    RETRIEVE_LOGS = "retrieve_logs"  # {"since", "until", "max_size"}: upload a .tar.gz of logs
    RESET_DB = "reset_db"            # delete and recreate the local database
    REBOOT = "reboot"                # reboot the terminal


# retrieve_logs' max_size bounds, in bytes: the server refuses others before sending, the agent
# again on receipt.
MIN_LOG_SIZE = 1024
MAX_LOG_SIZE = 64 * 1024 * 1024

COMMAND_NAMES: tuple[str, ...] = tuple(command.value for command in RemoteCommand)
# Commands without arguments: anything in "args" is refused rather than ignored.
NO_ARGUMENTS = frozenset({RemoteCommand.UNPAIR, RemoteCommand.RESET_DB, RemoteCommand.REBOOT})
