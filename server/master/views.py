"""The master service's rows as the admin API's JSON shapes (docs/protocol.md §7: status_view,
command, archive), in the milliseconds-precise time form of batm_common.clock."""

from __future__ import annotations

import datetime
import json

from batm_common.clock import iso_ms
from server.db.master import Archive, Command, TerminalStatus
from server.db.terminals import Terminal
from server.db.update_policy import UpdatePolicy


def moment(value: datetime.datetime | None) -> str | None:
    return iso_ms(value) if value is not None else None


def status_view(terminal: Terminal, row: TerminalStatus | None, policy: UpdatePolicy) -> dict:
    """The seed's monitoring row; `policy` is the operator's (firmware policy and catalog)."""
    version = (row.version if row and row.version is not None else terminal.version)
    error = row.last_sync_error if row else None
    update_required = policy.needs_update(version)
    return {
        "serial": terminal.serial,
        "location": terminal.location,
        "state": terminal.state,
        "online": bool(row.online) if row else False,
        "version": version,
        "slot": row.slot if row else None,
        "agent_state": row.state if row else None,
        "screen": row.screen if row else None,
        "last_update": row.last_update if row else None,
        "last_sync": row.last_sync if row else None,
        "last_sync_error": error,
        "uptime": row.uptime if row else None,
        "vpn_handshake_age": row.vpn_handshake_age if row else None,
        "outbox_pending": row.outbox_pending if row else None,
        "reported_at": row.reported_at if row else None,
        "received_at": moment(row.received_at) if row else None,
        "rejected": row.rejected if row else 0,
        "last_reject": row.last_reject if row else None,
        # The seed's colours: red on a sync error, yellow when an update is required.
        "highlight": "red" if error else ("yellow" if update_required else None),
    }


def command_view(row: Command) -> dict:
    return {
        "id": row.id, "serial": row.serial, "command": row.command, "args": json.loads(row.args),
        "issued_at": moment(row.issued_at), "ok": row.ok, "error": row.error,
        "result": json.loads(row.result) if row.result else None,
        "finished_at": moment(row.finished_at),
        "state": "pending" if row.finished_at is None else ("done" if row.ok else "failed"),
    }


def archive_view(row: Archive) -> dict:
    return {
        "id": row.id, "serial": row.serial, "command_id": row.command_id, "size": row.size,
        "sha256": row.sha256, "created_at": moment(row.created_at),
        "download": f"/api/v1/archives/{row.id}", "filename": row.filename,
    }
