"""The monitor's remote tools (the seed's "Retrieve logs" and "Reset POS database", and reboot):
issued to one terminal or to several selected rows, each checked against the user's locations
and role and audited; their results, and the log archives they brought, read back within the
user's locations only.

The commands themselves are the master service's (master/commands.py, MasterService.issue):
the same rows and MQTT messages as `batm-server terminal logs|reset-db|reboot`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from batm_common.remote_commands import RemoteCommand
from server.console.actions import Actions, Actor
from server.console.monitor import scoped
from server.console.permissions import Action, Principal
from server.db.master import Archive, Command
from server.db.terminals import Terminal
from server.errors import ServiceError, bad_request
from server.master.commands import log_arguments
from server.master.service import MasterService
from server.master.views import archive_view, command_view

MAX_SELECTED = 200  # rows of one bulk request (a page's worth)
RECENT = 20
COMMAND_ACTIONS = {RemoteCommand.RETRIEVE_LOGS: Action.RETRIEVE_LOGS,
                   RemoteCommand.RESET_DB: Action.RESET_DB, RemoteCommand.REBOOT: Action.REBOOT}


@dataclass(frozen=True)
class Outcome:
    """One terminal's answer to a (bulk) request: the command, or why it was refused."""

    serial: str
    command: dict | None
    error: str | None


def unknown_archive(archive_id: object) -> ServiceError:
    return ServiceError(404, "unknown_archive", f"there is no log archive {archive_id!r}")


class RemoteTools:
    def __init__(self, sessions: sessionmaker, actions: Actions,
                 master: MasterService | None = None):
        self._sessions = sessions
        self._actions = actions
        self._master = master

    def _need_master(self) -> MasterService:
        if self._master is None:
            raise ServiceError(503, "master_unavailable", "this server runs no master service: "
                                                          "remote commands are not possible")
        return self._master

    def issue(self, actor: Actor, serial: str, command: RemoteCommand,
              args: dict | None = None) -> dict:
        """Send `command` to `serial` (visible, allowed, audited); the command's view."""
        action = COMMAND_ACTIONS.get(command)
        if action is None:
            raise bad_request(f"the console sends {', '.join(COMMAND_ACTIONS)}, not {command!r}")
        if command == RemoteCommand.RETRIEVE_LOGS:
            given = args or {}
            args = log_arguments(given.get("since"), given.get("until"), given.get("max_size"))
            detail = f"{args['since']} .. {args['until']}, at most {args['max_size']} bytes"
        else:
            args, detail = {}, None
        return self._actions.audited(
            actor, action, serial,
            lambda: self._need_master().issue(serial, command.value, args), detail=detail)

    def issue_many(self, actor: Actor, serials: list[str], command: RemoteCommand,
                   args: dict | None = None) -> list[Outcome]:
        """The same command to each selected terminal; one refusal does not stop the rest."""
        chosen = list(dict.fromkeys(s for s in serials if isinstance(s, str) and s))
        if not chosen:
            raise bad_request("select at least one terminal")
        if len(chosen) > MAX_SELECTED:
            raise bad_request(f"select at most {MAX_SELECTED} terminals at once")
        outcomes = []
        for serial in chosen:
            try:
                outcomes.append(Outcome(serial, self.issue(actor, serial, command, args), None))
            except ServiceError as exc:
                if exc.status == 400:
                    raise  # the arguments: the same for every row
                outcomes.append(Outcome(serial, None, exc.message))
        return outcomes

    def recent(self, principal: Principal, serial: str | None = None,
               limit: int = RECENT) -> list[dict]:
        """The newest commands of the user's terminals (or of one), with their archives."""
        query = scoped(select(Command).join(Terminal, Terminal.serial == Command.serial),
                       principal)
        if serial is not None:
            query = query.where(Command.serial == serial)
        query = query.order_by(Command.issued_at.desc(), Command.id).limit(limit)
        with self._sessions() as session:
            rows = session.scalars(query).all()
            views = [command_view(c) for c in rows]
            archives: dict[str, list[dict]] = {}
            if rows:
                for archive in session.scalars(
                        select(Archive).where(Archive.command_id.in_([c.id for c in rows]))
                        .order_by(Archive.created_at)):
                    archives.setdefault(archive.command_id, []).append(archive_view(archive))
        for view in views:
            view["archives"] = archives.get(view["id"], [])
        return views

    def archive_file(self, principal: Principal, archive_id: str) -> tuple[dict, Path]:
        """An archive's view and file, for users of its terminal's location only (404 for
        anyone else, exactly as for an archive that does not exist)."""
        with self._sessions() as session:
            row = session.get(Archive, archive_id) if isinstance(archive_id, str) else None
            location = session.scalar(select(Terminal.location).where(
                Terminal.serial == row.serial)) if row is not None else None
            if row is None or not principal.sees(location):
                raise unknown_archive(archive_id)
        return self._need_master().archives.archive_file(archive_id)
