"""`batm-agent`: run the daemon, or talk to the running one through its control socket.

Every error is one line on stderr and exit status 1 (usage errors: 2, from argparse); a technician
or a test script must never have to read a traceback. BATM_DEBUG=1 shows tracebacks of bugs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from agent.master.outbox import UNACKED_ERROR_AFTER
from agent.vpn import options as vpn_options
from batm_common.control_client import ControlClient, ControlError, WaitTimeout, wait_for_screen
from batm_common.control_commands import ControlCommand
from batm_common.hostaddr import AddressError, parse_server_address
from batm_common.screen_ids import is_known_screen_id, unknown_screen_message

PROG = "batm-agent"
DEFAULT_STATE_DIR = "/var/lib/batm-agent"
DEFAULT_SLOTS_DIR = "/var/lib/batm-slots"
REQUEST_TIMEOUT = 10.0

STATUS_ORDER = (
    "serial", "version", "state", "screen", "server", "paired", "server_key_fingerprint",
    "pid", "uptime",
)


class CliError(Exception):
    """A problem to report on one line; exit status 1."""


# -- human output (the serial console uses these too) --------------------------------------------


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _value(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "uptime" and isinstance(value, int | float):
        return _duration(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _aligned(rows: list[tuple[str, str]]) -> list[str]:
    width = max((len(label) for label, _ in rows), default=0) + 1
    lines = []
    for label, text in rows:
        first, *more = text.splitlines() or [""]
        lines.append(f"{label + ':':<{width}} {first}".rstrip())
        lines.extend(f"{'':<{width}} {line}".rstrip() for line in more)
    return lines


def format_status(status: dict[str, Any]) -> list[str]:
    keys = [key for key in STATUS_ORDER if key in status]
    keys += sorted(key for key in status if key not in STATUS_ORDER)
    return _aligned([(key.replace("_", " "), _value(key, status[key])) for key in keys])


def format_screen(screen: dict[str, Any]) -> list[str]:
    rows = [("screen", str(screen.get("screen", "?")))]
    for key, label in (("title", "title"), ("text", "text"), ("pairing_code", "code")):
        if screen.get(key):
            rows.append((label, str(screen[key])))
    if screen.get("progress") is not None:
        rows.append(("progress", f"{screen['progress']}%"))
    if screen.get("step") is not None:
        steps = screen.get("steps")
        rows.append(("step", f"{screen['step']} of {steps}" if steps else str(screen["step"])))
    if screen.get("detail"):
        rows.append(("detail", str(screen["detail"])))
    return _aligned(rows)


# -- commands ------------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> ControlClient:
    return ControlClient(args.state_dir, timeout=REQUEST_TIMEOUT)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        from agent import daemon
    except ImportError as exc:
        raise CliError(f"the agent daemon cannot be loaded: {exc}") from None
    result = daemon.run(args)
    return result if isinstance(result, int) else 0


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        status = client.call(ControlCommand.STATUS)["status"]
    print(json.dumps(status, indent=2) if args.json else "\n".join(format_status(status)))
    return 0


def cmd_screen(args: argparse.Namespace) -> int:
    with _client(args) as client:
        screen = client.call(ControlCommand.SCREEN)["screen"]
    print(json.dumps(screen, indent=2) if args.json else "\n".join(format_screen(screen)))
    return 0


def cmd_set_server(args: argparse.Namespace) -> int:
    # Checked here first, so a typo is refused even while the agent is down.
    try:
        parse_server_address(args.address)
    except AddressError as exc:
        raise CliError(f"invalid server address {args.address.strip()!r}: {exc}") from None
    pin = {"pin": args.pin} if args.pin is not None else {}  # needed once paired
    with _client(args) as client:
        server = client.call(ControlCommand.SET_SERVER, address=args.address.strip(),
                             **pin)["server"]
    print(f"server set to {server}")
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    try:
        screen = wait_for_screen(args.state_dir, args.screen_id, args.timeout)
    except WaitTimeout as exc:
        raise CliError(str(exc)) from None
    print(json.dumps(screen, indent=2) if args.json else f"{args.screen_id} is showing")
    return 0


def cmd_event(args: argparse.Namespace) -> int:
    data = None
    if args.data is not None:
        try:
            data = json.loads(args.data)
        except ValueError as exc:
            raise CliError(f"--data is not valid JSON: {exc}") from None
    with _client(args) as client:
        event_id = client.call(ControlCommand.RECORD_EVENT, type=args.type, data=data)["id"]
    print(event_id)
    return 0


def cmd_emit_test_events(args: argparse.Namespace) -> int:
    """N numbered events over one control connection (tests and the bench use it)."""
    if args.count < 0:
        raise CliError("the number of events must be zero or more")
    with _client(args) as client:
        for i in range(args.count):
            client.call(ControlCommand.RECORD_EVENT, type=args.type, data={"n": i, "run": args.run})
    print(f"recorded {args.count} event(s)")
    return 0


# -- argument parsing ----------------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be zero or more seconds")
    return value


def _screen_id(text: str) -> str:
    if not is_known_screen_id(text):
        raise argparse.ArgumentTypeError(unknown_screen_message(text))
    return text


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than zero seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    state_dir_default = os.environ.get("BATM_STATE_DIR") or DEFAULT_STATE_DIR
    parser = argparse.ArgumentParser(prog=PROG, description="BATM terminal agent")
    parser.add_argument(
        "--state-dir", default=state_dir_default,
        help=f"the agent's state directory (env BATM_STATE_DIR; default {DEFAULT_STATE_DIR})",
    )
    # Also accepted after the subcommand; SUPPRESS keeps the top-level value when it is absent.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir", default=argparse.SUPPRESS,
        help=f"the agent's state directory (env BATM_STATE_DIR; default {DEFAULT_STATE_DIR})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", parents=[common], help="run the agent daemon")
    run.add_argument(
        "--hardware-dir", default=os.environ.get("BATM_HARDWARE_DIR") or None,
        help="where the hardware identity (serial number) is read (env BATM_HARDWARE_DIR)",
    )
    run.add_argument(
        "--slots-dir", default=os.environ.get("BATM_SLOTS_DIR") or DEFAULT_SLOTS_DIR,
        help=f"the firmware A/B slots (env BATM_SLOTS_DIR; default {DEFAULT_SLOTS_DIR})",
    )
    run.add_argument(
        "--retry-max", type=_positive_seconds, default=30.0, metavar="SECONDS",
        help="longest pause between attempts to reach the server (default 30)",
    )
    run.add_argument(
        "--log-level", default=os.environ.get("BATM_LOG_LEVEL", "info").lower(),
        choices=["debug", "info", "warning", "error"], help="default info",
    )
    run.add_argument(
        "--heartbeat", type=_positive_seconds, default=30.0, metavar="SECONDS",
        help="status heartbeat on the master service (default 30)",
    )
    run.add_argument(
        "--sync-error-after", type=_positive_seconds, default=UNACKED_ERROR_AFTER,
        metavar="SECONDS",
        help="report events the server has not acknowledged for this long as the last sync "
             f"error (default {UNACKED_ERROR_AFTER:g})",
    )
    vpn_options.add_run_options(run)  # scenario A: --vpn-interface, --vpn-health-window, …
    run.set_defaults(handler=cmd_run)

    status = sub.add_parser("status", parents=[common], help="show the agent's status")
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    status.set_defaults(handler=cmd_status)

    screen = sub.add_parser("screen", parents=[common], help="show what the screen shows")
    screen.add_argument("--json", action="store_true", help="print the raw JSON")
    screen.set_defaults(handler=cmd_screen)

    set_server = sub.add_parser("set-server", parents=[common], help="point at a server")
    set_server.add_argument("address", metavar="HOST[:PORT]")
    set_server.add_argument("--pin", help="the advanced-administration PIN (needed when the "
                            "terminal is paired: the change drops its pairing key)")
    set_server.set_defaults(handler=cmd_set_server)

    wait = sub.add_parser("wait", parents=[common], help="wait until a screen shows")
    wait.add_argument("screen_id", metavar="SCREEN_ID", type=_screen_id)
    wait.add_argument(
        "--timeout", type=_seconds, default=60.0, metavar="SECONDS", help="default 60"
    )
    wait.add_argument("--json", action="store_true", help="print the screen model on success")
    wait.set_defaults(handler=cmd_wait)

    event = sub.add_parser("event", parents=[common],
                           help="record an event (stored, then sent to the master service)")
    event.add_argument("type", metavar="TYPE", help="e.g. cash.dispensed")
    event.add_argument("--data", metavar="JSON", help="the event's data, any JSON value")
    event.set_defaults(handler=cmd_event)

    emit = sub.add_parser("emit-test-events", parents=[common],
                          help="record N numbered test events")
    emit.add_argument("count", metavar="N", type=int)
    emit.add_argument("--type", default="test", help="event type (default test)")
    emit.add_argument("--run", default="", help="a label stored in each event's data")
    emit.set_defaults(handler=cmd_emit_test_events)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (CliError, ControlError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout went away (`batm-agent status | head -1`): nothing left to tell anyone.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # e.g. the daemon cannot listen: another agent owns the socket
        if os.environ.get("BATM_DEBUG"):
            raise
        print(f"{PROG}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if os.environ.get("BATM_DEBUG"):
            raise
        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        print(f"{PROG}: internal error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
