"""`batm-console`: the terminal's serial console, a bridge from a UART to the control socket.

A technician with a terminal emulator gets a prompt and readable answers (the console echoes what
is typed, since terminal emulators rely on the remote echo). A test rig switches to JSON mode
(`--json`, or the command `json on`) and gets exactly one JSON line per command line, no echo, no
prompt. Whatever arrives on the wire (line noise, binary garbage, a cat'ed file, the agent
restarting, the USB-serial adapter being unplugged) the console answers or waits, and keeps going.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import serial

from agent.cli import DEFAULT_STATE_DIR, format_screen, format_status
from batm_common.control_client import ControlClient, ControlError, WaitTimeout, wait_for_screen
from batm_common.control_commands import ControlCommand
from batm_common.digits import decimal
from batm_common.hostaddr import AddressError, parse_server_address
from batm_common.screen_ids import is_known_screen_id, unknown_screen_message

log = logging.getLogger("batm-console")

MAX_LINE = 1024
PROMPT = "batm> "
REQUEST_TIMEOUT = 10.0
MAX_WAIT = 24 * 3600.0
REOPEN_INTERVAL = 0.5
HELP = (
    ("status", "the agent's status"),
    ("screen", "what the screen shows now"),
    ("set-server HOST[:PORT] [PIN]", "point the terminal at its server (PIN once paired)"),
    ("wait SCREEN_ID [SECONDS]", "wait until that screen shows (default 60 s)"),
    ("json on|off", "one JSON answer per line, no echo (for test rigs)"),
    ("help", "this list"),
)

_BACKSPACE = (0x08, 0x7F)
_CTRL_C, _CTRL_U, _TAB, _ESC, _CR, _LF = 0x03, 0x15, 0x09, 0x1B, 0x0D, 0x0A


class LineEditor:
    """Turns the bytes of a serial line into events: ("echo", bytes), ("line", bytes),
    ("overlong", b""), ("cancel", b"").

    CR, LF and CRLF each end one line. Backspace/DEL erase a character (a whole UTF-8 sequence),
    Ctrl-U the line, Ctrl-C cancels it; ANSI escape sequences (arrow keys) are ignored. A line
    longer than max_line is swallowed up to its end and reported as overlong.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self.buffer = bytearray()
        self.overflow = False
        self._after_cr = False
        self._escape = 0  # 0: normal, 1: after ESC, 2: inside a CSI/SS3 sequence

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        events: list[tuple[str, bytes]] = []
        for byte in data:
            after_cr, self._after_cr = self._after_cr, False
            if self._escape == 1:
                self._escape = 2 if byte in b"[O" else 0
            elif self._escape == 2:
                if 0x40 <= byte <= 0x7E:
                    self._escape = 0
            elif byte == _LF and after_cr:
                pass  # the LF of a CRLF
            elif byte in (_CR, _LF):
                self._after_cr = byte == _CR
                events.append(("echo", b"\r\n"))
                events.append(("overlong", b"") if self.overflow else ("line", bytes(self.buffer)))
                self._reset()
            elif byte in _BACKSPACE:
                if self.buffer and not self.overflow:
                    self._erase_char()
                    events.append(("echo", b"\b \b"))
            elif byte == _CTRL_U:
                erased = 0
                while self.buffer and not self.overflow:
                    self._erase_char()
                    erased += 1
                if erased:
                    events.append(("echo", b"\b \b" * erased))
            elif byte == _CTRL_C:
                self._reset()
                events.append(("cancel", b""))
            elif byte == _ESC:
                self._escape = 1
            elif byte < 0x20 and byte != _TAB:
                pass  # other control characters mean nothing here
            elif self.overflow:
                pass
            elif len(self.buffer) >= self.max_line:
                self.overflow = True
            else:
                char = b" " if byte == _TAB else bytes([byte])
                self.buffer += char
                events.append(("echo", char))
        return events

    def _erase_char(self) -> None:
        while self.buffer and 0x80 <= self.buffer[-1] < 0xC0:  # UTF-8 continuation bytes
            self.buffer.pop()
        if self.buffer:
            self.buffer.pop()

    def _reset(self) -> None:
        self.buffer.clear()
        self.overflow = False


@dataclass
class Reply:
    data: dict[str, Any]
    human: list[str] = field(default_factory=list)


def _error(message: str, **extra: Any) -> Reply:
    return Reply({"ok": False, "error": message, **extra}, [f"error: {message}"])


class PortLost(Exception):
    pass


class Console:
    def __init__(
        self,
        port: str,
        state_dir: str,
        *,
        baud: int = 115200,
        json_mode: bool = False,
        open_port: Callable[[], Any] | None = None,
    ) -> None:
        self.port_name = port
        self.state_dir = state_dir
        self.baud = baud
        self.json_mode = json_mode
        self._open_port = open_port or self._open_serial
        self.editor = LineEditor()
        self.port: Any = None

    def _open_serial(self) -> Any:
        return serial.serial_for_url(
            self.port_name, baudrate=self.baud, timeout=0.5, write_timeout=2.0
        )

    # -- the serial line --------------------------------------------------------------------------

    def run(self) -> int:
        self.port = self._open_port()
        try:
            self._greet()
        except PortLost as exc:
            self._reopen(exc)
        while True:
            try:
                data = self.port.read(self.port.in_waiting or 1)
                if data:
                    self.handle_input(data)
            except (serial.SerialException, OSError, PortLost) as exc:
                self._reopen(exc)

    def _reopen(self, problem: BaseException) -> None:
        log.warning("lost %s (%s); waiting for it to come back", self.port_name, problem)
        with contextlib.suppress(Exception):  # the device is gone; closing cannot tell us more
            self.port.close()
        while True:
            time.sleep(REOPEN_INTERVAL)
            try:
                self.port = self._open_port()
            except (serial.SerialException, OSError, ValueError):
                continue
            self.editor = LineEditor()
            try:
                self._greet()
            except PortLost:
                continue
            log.info("%s is back", self.port_name)
            return

    def _write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except serial.SerialTimeoutException:
            log.warning("nobody reads %s; dropped %d bytes of output", self.port_name, len(data))
        except (serial.SerialException, OSError) as exc:
            raise PortLost(str(exc)) from exc

    def _greet(self) -> None:
        if not self.json_mode:
            banner = f"BATM terminal console on {self.port_name}. Type 'help' for commands."
            self._write(f"\r\n{banner}\r\n{PROMPT}".encode())

    def handle_input(self, data: bytes) -> None:
        for kind, payload in self.editor.feed(data):
            if kind == "echo":
                if not self.json_mode:
                    self._write(payload)
            elif kind == "line":
                self.handle_line(payload)
            elif kind == "overlong":
                self._send(_error(f"the line is longer than {MAX_LINE} bytes; ignored"))
            elif kind == "cancel" and not self.json_mode:
                self._write(f"^C\r\n{PROMPT}".encode())

    def handle_line(self, raw: bytes) -> None:
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            self._send(_error("the line is not valid UTF-8 text (noise on the line?)"))
            return
        if not text.strip():
            if not self.json_mode:
                self._write(PROMPT.encode())
            return
        self._send(self.execute(text))

    def _send(self, reply: Reply) -> None:
        if self.json_mode:
            self._write(json.dumps(reply.data, ensure_ascii=False).encode() + b"\r\n")
        else:
            text = "".join(f"{line}\r\n" for line in reply.human)
            self._write((text + PROMPT).encode())

    # -- commands ---------------------------------------------------------------------------------

    def execute(self, text: str) -> Reply:
        words = text.split()
        name, args = words[0].lower(), words[1:]
        handler = {
            "help": self.cmd_help,
            "status": self.cmd_status,
            "screen": self.cmd_screen,
            "set-server": self.cmd_set_server,
            "set_server": self.cmd_set_server,
            "wait": self.cmd_wait,
            "json": self.cmd_json,
        }.get(name)
        if handler is None:
            shown = name if len(name) <= 40 else name[:40] + "…"
            return _error(f"unknown command {shown!r}; type 'help' for the list")
        try:
            return handler(args)
        except ControlError as exc:
            return _error(str(exc))
        except Exception as exc:  # a bug must cost one answer, not the console
            log.exception("command %r failed", name)
            return _error(f"internal error: {exc.__class__.__name__}: {exc}")

    def _client(self) -> ControlClient:
        return ControlClient(self.state_dir, timeout=REQUEST_TIMEOUT)

    def cmd_help(self, args: list[str]) -> Reply:
        width = max(len(usage) for usage, _ in HELP)
        lines = ["commands:"] + [f"  {usage:<{width}}  {what}" for usage, what in HELP]
        return Reply({"ok": True, "commands": [usage for usage, _ in HELP]}, lines)

    def cmd_status(self, args: list[str]) -> Reply:
        if args:
            return _error("status takes no arguments")
        with self._client() as client:
            status = client.call(ControlCommand.STATUS)["status"]
        return Reply({"ok": True, "status": status}, format_status(status))

    def cmd_screen(self, args: list[str]) -> Reply:
        if args:
            return _error("screen takes no arguments")
        with self._client() as client:
            screen = client.call(ControlCommand.SCREEN)["screen"]
        return Reply({"ok": True, "screen": screen}, format_screen(screen))

    def cmd_set_server(self, args: list[str]) -> Reply:
        if len(args) not in (1, 2):
            return _error("usage: set-server HOST[:PORT] [PIN]")
        try:
            parse_server_address(args[0])
        except AddressError as exc:
            return _error(f"invalid server address {args[0]!r}: {exc}")
        pin = {"pin": args[1]} if len(args) == 2 else {}  # needed once paired
        with self._client() as client:
            server = client.call(ControlCommand.SET_SERVER, address=args[0], **pin)["server"]
        return Reply({"ok": True, "server": server}, [f"server set to {server}"])

    def cmd_wait(self, args: list[str]) -> Reply:
        if not 1 <= len(args) <= 2:
            return _error("usage: wait SCREEN_ID [SECONDS]")
        screen_id = args[0]
        if not is_known_screen_id(screen_id):
            return _error(unknown_screen_message(screen_id))
        timeout = 60.0
        if len(args) == 2:
            try:
                timeout = float(args[1])
            except ValueError:
                return _error(f"{args[1]!r} is not a number of seconds")
            if not math.isfinite(timeout) or not 0 <= timeout <= MAX_WAIT:
                return _error(f"the timeout must be from 0 to {MAX_WAIT:g} seconds")
        try:
            screen = wait_for_screen(self.state_dir, screen_id, timeout)
        except WaitTimeout as exc:
            return _error(str(exc), screen=exc.last_screen)
        return Reply({"ok": True, "screen": screen}, [f"{screen_id} is showing"])

    def cmd_json(self, args: list[str]) -> Reply:
        if len(args) != 1 or args[0].lower() not in ("on", "off"):
            return _error("usage: json on|off")
        # The answer comes in the new mode, so a rig can wait for the JSON line it asked for.
        self.json_mode = args[0].lower() == "on"
        return Reply({"ok": True, "json": self.json_mode}, ["JSON mode off"])


def _baud(text: str) -> int:
    value = decimal(text)
    if not value:
        raise argparse.ArgumentTypeError(f"{text!r} is not a baud rate")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batm-console", description="serial console for the BATM terminal agent"
    )
    parser.add_argument("--port", required=True, metavar="DEVICE",
                        help="serial device (/dev/ttyAMA0) or a pyserial URL")
    parser.add_argument(
        "--state-dir", default=os.environ.get("BATM_STATE_DIR") or DEFAULT_STATE_DIR,
        help=f"the agent's state directory (env BATM_STATE_DIR; default {DEFAULT_STATE_DIR})",
    )
    parser.add_argument("--baud", type=_baud, default=115200, help="default 115200")
    parser.add_argument("--json", action="store_true", help="start in JSON mode")
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="batm-console: %(message)s")
    signal.signal(signal.SIGTERM, _terminate)
    console = Console(args.port, args.state_dir, baud=args.baud, json_mode=args.json)
    try:
        return console.run()
    except (serial.SerialException, OSError, ValueError) as exc:
        print(f"batm-console: cannot open serial port {args.port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
