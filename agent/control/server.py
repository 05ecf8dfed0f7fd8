"""The agent's control socket: JSON lines over a Unix socket (docs/protocol.md §4).

Three clients share it: the display, the serial console and the `batm-agent` CLI. The server side
(ControlServer) runs in the daemon's asyncio loop and delegates to a ControlBackend the daemon
provides; the blocking client side lives in batm_common/control_client.py, and the commands
in batm_common/control_commands.py.

Whatever a client sends, the answer is a JSON line and the connection stays up: a bad request
gets {"ok": false, "error": "<sentence naming the problem>"}.

Who may do what (issue 13, item 4). The socket is 0660 for the display's group, so a client
whose uid (SO_PEERCRED) is neither root nor the agent's own is the display: it gets only
DISPLAY_COMMANDS — the screen, and the advanced administration, whose every change needs a PIN
session. And changing the server of a *paired* terminal (set_server drops the pinned key) needs
the admin PIN, `"pin"`, from every client: the CLI and the serial console alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import json
import logging
import os
import socket
import stat
import struct
import threading
from pathlib import Path
from typing import Any, Protocol

from agent.control.screen_bus import ScreenBus
from batm_common.control_commands import ADMIN_PREFIX, ControlCommand
from batm_common.hostaddr import AddressError
from batm_common.jsonlines import encode_line

log = logging.getLogger(__name__)

JSON_WHITESPACE = " \t\r\n"

SOCKET_MODE = 0o660  # the display user is in the agent's group
MAX_LINE = 64 * 1024
COMMANDS = tuple(ControlCommand)  # each answered by a cmd_<name> method below
# Every admin_* command goes to the advanced administration: backend.admin.handle(cmd, request).
KNOWN = (*COMMANDS, f"{ADMIN_PREFIX}*")
# What the display needs besides admin_*: it subscribes to the screen model (display/agent_link).
DISPLAY_COMMANDS = (ControlCommand.PING, ControlCommand.SCREEN, ControlCommand.SUBSCRIBE)


def peer_uid(writer: asyncio.StreamWriter) -> int | None:
    """The connecting process's uid (SO_PEERCRED); None when the socket cannot say."""
    sock = writer.get_extra_info("socket")
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (AttributeError, OSError):
        return None
    return struct.unpack("3i", creds)[1]


def is_privileged(uid: int | None) -> bool:
    """Root or the agent's own user: the CLI, the serial console, the rig. Else: the display."""
    return uid is not None and uid in (0, os.getuid())


class ControlBackend(Protocol):
    """What the daemon gives the control server."""

    bus: ScreenBus

    def status(self) -> dict: ...

    def set_server(self, address: str) -> str:
        """Store the server address; return it as "HOST:PORT". Raises AddressError."""
        ...

    # Optional: `admin` (agent.admin.service.AdminService), whose handle(cmd, request) -> dict
    # answers every "admin_*" command. A backend without it refuses them.


def _type_name(value: object) -> str:
    return {
        type(None): "null", bool: "a boolean", int: "a number", float: "a number",
        str: "a string", list: "a list", dict: "an object",
    }.get(type(value), type(value).__name__)


def _error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


# ------------------------------------------------------------------------------------------------
# Server


class ControlServer:
    """Serves the control protocol on a Unix socket for one backend."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        backend: ControlBackend,
        *,
        mode: int = SOCKET_MODE,
        max_line: int = MAX_LINE,
    ) -> None:
        self.path = Path(path)
        self.backend = backend
        self.mode = mode
        self.max_line = max_line
        self._server: asyncio.AbstractServer | None = None
        self._inode: tuple[int, int] | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen. A stale socket file is replaced; a live one (another agent) is an error."""
        if self._server is not None:
            raise RuntimeError("the control server is already started")
        self._refuse_if_live()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Bind under a temporary name, set the mode, then rename into place: clients never see
        # the socket with the umask's mode, and a stale file is replaced atomically.
        # (The temporary name is never longer than "control.sock": AF_UNIX paths are short.)
        tmp = self.path.with_name(f".ctl{os.getpid()}")
        try:
            tmp.unlink(missing_ok=True)
            sock.bind(os.fsencode(tmp))
            os.chmod(tmp, self.mode)
            os.replace(tmp, self.path)
            info = self.path.stat()
            self._inode = (info.st_dev, info.st_ino)
            self._server = await asyncio.start_unix_server(self._serve_connection, sock=sock)
        except OSError as exc:
            sock.close()
            tmp.unlink(missing_ok=True)
            reason = exc.strerror or str(exc)
            code = exc.errno or errno.EINVAL
            raise OSError(code, f"cannot listen on {self.path}: {reason}") from exc
        log.info("control socket listening on %s", self.path)

    def _refuse_if_live(self) -> None:
        try:
            info = self.path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise OSError(errno.EEXIST, f"{self.path} exists and is not a socket; not replacing it")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(os.fsencode(self.path))
            except OSError:
                log.info("removing stale control socket %s", self.path)
                return
        raise OSError(errno.EADDRINUSE, f"another agent is already listening on {self.path}")

    async def close(self) -> None:
        """Stop listening, end every connection, remove the socket file if it is still ours."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        with contextlib.suppress(asyncio.CancelledError):
            await server.wait_closed()
        with contextlib.suppress(OSError):
            info = self.path.lstat()
            if (info.st_dev, info.st_ino) == self._inode:
                self.path.unlink()

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- one connection --------------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        connection = _Connection(self, writer)
        try:
            await connection.run(reader)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # a bug here must cost one connection, never the daemon
            log.exception("control connection failed")
        finally:
            connection.stop_subscription()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._connections.discard(task)


class _Connection:
    def __init__(self, server: ControlServer, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.backend = server.backend
        self.writer = writer
        self.privileged = is_privileged(peer_uid(writer))
        self.subscription_task: asyncio.Task[None] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        try:
            data = encode_line(message)
        except (TypeError, ValueError) as exc:  # a backend returned something JSON cannot carry
            log.exception("control answer cannot be encoded")
            data = encode_line(_error(f"the agent produced an answer it cannot send: {exc}"))
        self.writer.write(data)
        await self.writer.drain()

    async def run(self, reader: asyncio.StreamReader) -> None:
        buffer = bytearray()
        discarding = False  # inside an overlong line: drop bytes until its newline
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            buffer += chunk
            while True:
                newline = buffer.find(b"\n")
                if newline < 0:
                    if len(buffer) > self.server.max_line:
                        if not discarding:
                            await self.send(_error(self._overlong()))
                        discarding = True
                        buffer.clear()
                    break
                line = bytes(buffer[:newline])
                del buffer[: newline + 1]
                if discarding:
                    discarding = False
                    continue
                if len(line) > self.server.max_line:
                    await self.send(_error(self._overlong()))
                    continue
                answer = await self.handle_line(line)
                if answer is not None:
                    await self.send(answer)

    def _overlong(self) -> str:
        return f"the request line is longer than {self.server.max_line} bytes"

    async def handle_line(self, line: bytes) -> dict[str, Any] | None:
        try:
            text = line.decode()
        except UnicodeDecodeError:
            return _error("the request is not valid UTF-8 text")
        if not text.strip(JSON_WHITESPACE):
            # Blank lines are harmless (someone typing into socat). Only JSON's own whitespace:
            # str.strip() also eats "\x1e" and the like, which then got no answer at all
            # (found by tests/test_fuzz.py).
            return None
        try:
            request = json.loads(text)
        except RecursionError:  # "[[[[…": found by tests/test_fuzz.py, cost the connection
            return _error("the request is nested too deeply to be a command")
        except json.JSONDecodeError as exc:
            return _error(f"the request is not valid JSON ({exc.msg} at column {exc.colno})")
        if not isinstance(request, dict):
            return _error(f"the request must be a JSON object, not {_type_name(request)}")
        if "cmd" not in request:
            return _error('the request has no "cmd" field')
        cmd = request["cmd"]
        if not isinstance(cmd, str):
            return _error(f'the "cmd" field must be a string, not {_type_name(cmd)}')
        if cmd.startswith(ADMIN_PREFIX):
            return await self.cmd_admin(cmd, request)
        if cmd not in COMMANDS:
            return _error(f"unknown command {cmd!r} (known: {', '.join(KNOWN)})")
        if not self.privileged and cmd not in DISPLAY_COMMANDS:
            return _error(f"{cmd!r} is not available to the display (it may send "
                          f"{', '.join(DISPLAY_COMMANDS)} and the admin_* commands)")
        try:
            return await getattr(self, f"cmd_{cmd}")(request)
        except Exception as exc:
            log.exception("control command %r failed", cmd)
            return _error(f"the agent failed to run {cmd!r}: {exc}")

    async def cmd_admin(self, cmd: str, request: dict[str, Any]) -> dict[str, Any]:
        admin = getattr(self.backend, "admin", None)
        if admin is None:
            return _error("this agent has no advanced administration")
        try:
            answer = await _maybe_await(admin.handle(cmd, request))
        except Exception as exc:
            log.exception("control command %r failed", cmd)
            return _error(f"the agent failed to run {cmd!r}: {exc}")
        if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            return _error(f"the agent produced no answer to {cmd!r}")
        return answer

    async def cmd_ping(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    async def cmd_status(self, request: dict[str, Any]) -> dict[str, Any]:
        status = await _maybe_await(self.backend.status())
        return {"ok": True, "status": status}

    async def cmd_screen(self, request: dict[str, Any]) -> dict[str, Any]:
        screen = self.backend.bus.current
        if screen is None:
            return _error("the agent has not decided what to show yet; try again in a moment")
        return {"ok": True, "screen": screen}

    async def cmd_set_server(self, request: dict[str, Any]) -> dict[str, Any]:
        if "address" not in request:
            return _error('set_server needs an "address" field (HOST[:PORT])')
        address = request["address"]
        if not isinstance(address, str):
            return _error(f'the "address" field must be a string, not {_type_name(address)}')
        status = await _maybe_await(self.backend.status())
        if isinstance(status, dict) and status.get("paired"):
            admin = getattr(self.backend, "admin", None)
            refusal = (admin.authorize(request.get("pin")) if admin is not None else
                       _error("this terminal is paired and this agent has no admin PIN to "
                              "allow a server change"))
            if refusal is not None:
                return refusal
        try:
            server = await _maybe_await(self.backend.set_server(address))
        except AddressError as exc:
            return _error(f"invalid server address {address.strip()!r}: {exc}")
        return {"ok": True, "server": server}

    async def cmd_record_event(self, request: dict[str, Any]) -> dict[str, Any]:
        """{"type": str, "data": any JSON}: stored durably in the outbox, then published."""
        record = getattr(self.backend, "record_event", None)
        if record is None:
            return _error("this agent records no events")
        try:
            event_id = await _maybe_await(record(request.get("type"), request.get("data")))
        except ValueError as exc:  # agent.master.outbox.EventError: says what is wrong
            return _error(str(exc))
        return {"ok": True, "id": event_id}

    async def cmd_subscribe(self, request: dict[str, Any]) -> dict[str, Any] | None:
        if self.subscription_task is not None:
            return _error("this connection is already subscribed")
        subscription = self.backend.bus.subscribe()
        try:
            first = await subscription.__anext__()
            await self.send({"ok": True, "screen": first})
        except BaseException:
            subscription.close()
            raise
        self.subscription_task = asyncio.create_task(self._forward(subscription))
        return None  # answered above, before any event can follow

    async def _forward(self, subscription: Any) -> None:
        try:
            async for screen in subscription:
                await self.send({"event": "screen", "screen": screen})
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            subscription.close()

    def stop_subscription(self) -> None:
        if self.subscription_task is not None:
            self.subscription_task.cancel()


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class ControlServerThread:
    """A ControlServer on its own event loop in a background thread.

    For programs that are not asyncio (tests, a fake agent for the display or the simulator):
    `call(fn, *args)` runs fn in the server's loop, which is where the bus must be used.
    """

    def __init__(self, path: str | os.PathLike[str], backend: ControlBackend, **options: Any):
        self.path = Path(path)
        self.backend = backend
        self._options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.server: ControlServer | None = None

    def start(self) -> ControlServerThread:
        self._thread.start()

        async def start() -> ControlServer:
            server = ControlServer(self.path, self.backend, **self._options)
            await server.start()
            return server

        self.server = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return self

    def call(self, fn: Any, *args: Any) -> Any:
        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def stop(self) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.close(), self._loop).result(10)
            self.server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> ControlServerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
