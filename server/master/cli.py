"""`batm-server terminal status|events|logs|reset-db|reboot|command|archives`: the master
service's side of the CLI (the seed's status-monitoring page, as commands)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from batm_common.remote_commands import RemoteCommand
from server.cli.tables import print_json, render
from server.errors import ServiceError, bad_request
from server.paths import ARCHIVES_DIR

MASTER_ACTIONS = ("status", "events", "logs", "reset-db", "reboot", "command", "archives")
STATUS_FIELDS = (
    "serial", "state", "online", "version", "slot", "agent_state", "screen", "last_update",
    "last_sync", "last_sync_error", "uptime", "vpn_handshake_age", "outbox_pending",
    "reported_at", "received_at", "rejected", "last_reject", "highlight",
)


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def master_command(args: argparse.Namespace, backend, data_dir: Path) -> None:
    action = args.action
    if action == "status":
        status = backend.status(args.serial, args.history)
        if args.json:
            print_json(status)
            return
        width = max(len(f) for f in STATUS_FIELDS) + 1
        for name in STATUS_FIELDS:
            print(f"{name + ':':<{width}} {_show(status.get(name))}")
        if status.get("history"):
            print()
            print(render(["RECEIVED", "STATE", "SCREEN", "VERSION", "ONLINE", "SYNC ERROR"], [
                [h["received_at"], h["status"].get("state"), h["status"].get("screen"),
                 h["status"].get("version"), h["status"].get("online", True),
                 h["status"].get("last_sync_error")] for h in status["history"]
            ]))
    elif action == "events":
        events = backend.events(args.serial, 0 if args.count else max(0, args.limit))
        if args.count:
            print(events["count"])
        elif args.json:
            print_json(events)
        else:
            print(f"{events['count']} event(s)")
            print(render(["ID", "TYPE", "AT", "RECEIVED"], [
                [e["id"], e["type"], e["at"], e["received_at"]] for e in events["events"]]))
    elif action == "logs":
        _logs(args, backend, data_dir)
    elif action == "reset-db":
        if not args.yes:
            if not sys.stdin.isatty():
                raise bad_request("reset-db deletes the terminal's local database: confirm with "
                                  "--yes (no terminal to ask on)")
            typed = input(f"Reset the local database of {args.serial}? Type the serial to "
                          "confirm: ").strip()
            if typed != args.serial:
                raise ServiceError(400, "not_confirmed", "not confirmed; nothing was done")
        _issue_and_wait(backend, args.serial, RemoteCommand.RESET_DB, {}, 30.0)
    elif action == "reboot":
        command = backend.issue_command(args.serial, RemoteCommand.REBOOT, {})
        print(f"reboot sent to {args.serial} (command {command['id']})")
    elif action == "command":
        print_json(backend.command(args.serial, args.command_id, args.wait))
    elif action == "archives":
        archives = backend.archives(args.serial)
        if args.json:
            print_json(archives)
        else:
            print(render(["ID", "COMMAND", "SIZE", "CREATED", "DOWNLOAD", "FILE"], [
                [a["id"], a["command_id"], a["size"], a["created_at"], a["download"],
                 data_dir / ARCHIVES_DIR / a["filename"]] for a in archives]))


def _issue_and_wait(backend, serial: str, name: str, command_args: dict, timeout: float) -> dict:
    command = backend.issue_command(serial, name, command_args)
    if command["finished_at"] is None:
        command = backend.command(serial, command["id"], timeout)
    if command["finished_at"] is None:
        raise ServiceError(504, "timeout", f"{name} sent (command {command['id']}) but the "
                                            f"terminal did not answer within {timeout:g}s")
    if not command["ok"]:
        raise ServiceError(409, "failed", f"{name} failed on {serial}: {command['error']}")
    print(f"{name} done on {serial} (command {command['id']})")
    return command


def _logs(args: argparse.Namespace, backend, data_dir: Path) -> None:
    # Here, not at the top: every other command starts faster without SQLAlchemy.
    from server.master.commands import log_arguments

    command_args = log_arguments(args.since, args.until, args.max_size,
                                 ("--since", "--until", "--max-size"))
    if not args.wait:
        command = backend.issue_command(args.serial, RemoteCommand.RETRIEVE_LOGS, command_args)
        print(f"{RemoteCommand.RETRIEVE_LOGS} sent to {args.serial} (command {command['id']}); "
              f"see `batm-server terminal command {args.serial} {command['id']}`")
        return
    started = time.monotonic()
    command = _issue_and_wait(backend, args.serial, RemoteCommand.RETRIEVE_LOGS, command_args,
                              args.timeout)
    for archive in command.get("archives", []):
        print(f"archive {archive['id']}: {archive['size']} bytes, download "
              f"{archive['download']}, file {data_dir / ARCHIVES_DIR / archive['filename']}")
    if not command.get("archives"):
        raise ServiceError(504, "timeout", "the terminal answered but no archive arrived "
                                            f"within {time.monotonic() - started:.0f}s")
