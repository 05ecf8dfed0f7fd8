"""Remote commands from the master service (terminals/<serial>/commands → …/results).

A command is {"id", "command", "args"}; every one gets a result {"command_id", "ok", "error"?,
"result"?}. A payload that is not JSON, too big, or names an unknown command or bad arguments
gets an error result naming the problem — never an exception out of here.

The commands are catalogued in batm_common/remote_commands.py (RemoteCommand); the master session
(agent/master/session.py) carries each out. Here: parsing and running them, and the arguments of
retrieve_logs ({"since": ISO, "until": ISO, "max_size": bytes}).
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from batm_common.jsondoc import NotAJsonObject, parse_object
from batm_common.remote_commands import MAX_LOG_SIZE, MIN_LOG_SIZE, NO_ARGUMENTS

log = logging.getLogger(__name__)

MAX_COMMAND = 64 * 1024
COMMAND_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class CommandError(ValueError):
    """The command cannot be carried out; str() goes into the error result."""


@dataclass(frozen=True)
class Command:
    id: str
    name: str
    args: dict


@dataclass(frozen=True)
class LogRequest:
    since: datetime.datetime
    until: datetime.datetime
    max_size: int


def parse_command(payload: bytes) -> Command:
    """The command in an MQTT payload; CommandError (with the id if one was readable)."""
    try:
        data = parse_object(payload, "the command", max_bytes=MAX_COMMAND)
    except NotAJsonObject as exc:
        raise CommandError(str(exc)) from None
    command_id = data.get("id")
    if not isinstance(command_id, str) or not COMMAND_ID.match(command_id):
        raise CommandError("the command has no valid id (1-64 letters, digits, '-', '_')")
    name = data.get("command")
    args = data.get("args", {})
    if args is None:
        args = {}
    if not isinstance(name, str):
        raise IdentifiedError(command_id, "command: must be a string")
    if not isinstance(args, dict):
        raise IdentifiedError(command_id, "args: must be a JSON object")
    return Command(command_id, name, args)


class IdentifiedError(CommandError):
    def __init__(self, command_id: str, message: str):
        super().__init__(message)
        self.command_id = command_id


def _moment(args: dict, name: str) -> datetime.datetime:
    value = args.get(name)
    if not isinstance(value, str):
        raise CommandError(f"{name}: must be an ISO 8601 time, got {value!r}")
    try:
        moment = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        raise CommandError(f"{name}: {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


def log_request(args: dict) -> LogRequest:
    since, until = _moment(args, "since"), _moment(args, "until")
    if since >= until:
        raise CommandError("since must be before until")
    max_size = args.get("max_size")
    if isinstance(max_size, bool) or not isinstance(max_size, int):
        raise CommandError(f"max_size: must be an integer number of bytes, got {max_size!r}")
    if not MIN_LOG_SIZE <= max_size <= MAX_LOG_SIZE:
        raise CommandError(f"max_size: must be from {MIN_LOG_SIZE} to {MAX_LOG_SIZE} bytes, "
                           f"got {max_size}")
    return LogRequest(since, until, max_size)


def _no_args(args: dict) -> None:
    if args:
        raise CommandError(f"takes no arguments, got {sorted(args)}")


Handler = Callable[[Command], Awaitable[dict | None]]


class CommandRunner:
    """Validates and runs commands; `respond(result_dict)` publishes each result."""

    def __init__(self, handlers: dict[str, Handler],
                 respond: Callable[[dict], Awaitable[None]]):
        self.handlers = handlers
        self.respond = respond
        self.seen: dict[str, dict] = {}  # id → result: a redelivered command is not run twice

    async def handle(self, payload: bytes) -> dict:
        try:
            command = parse_command(payload)
        except IdentifiedError as exc:
            return await self._answer(exc.command_id, error=str(exc))
        except CommandError as exc:
            return await self._answer(None, error=str(exc))
        if command.id in self.seen:
            result = self.seen[command.id]
            await self.respond(result)
            return result
        handler = self.handlers.get(command.name)
        if handler is None:
            return await self._answer(command.id, error=(
                f"unknown command {command.name!r} (known: {', '.join(self.handlers)})"))
        try:
            if command.name in NO_ARGUMENTS:
                _no_args(command.args)
            result = await handler(command)
        except CommandError as exc:
            return await self._answer(command.id, error=f"{command.name}: {exc}")
        except Exception as exc:  # a handler bug must not take the agent down
            log.exception("command %s failed", command.name)
            return await self._answer(command.id, error=f"{command.name} failed: {exc}")
        return await self._answer(command.id, result=result or {})

    async def _answer(self, command_id: str | None, *, error: str | None = None,
                      result: dict | None = None) -> dict:
        answer: dict = {"command_id": command_id, "ok": error is None}
        if error is not None:
            answer["error"] = error[:480]
            log.warning("command %s refused: %s", command_id, error)
        else:
            answer["result"] = result
        if command_id is not None:
            self.seen[command_id] = answer
            if len(self.seen) > 1000:
                self.seen.pop(next(iter(self.seen)))
        await self.respond(answer)
        return answer
