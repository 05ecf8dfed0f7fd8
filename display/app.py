"""batm-display: the kiosk window.  Shows the agent's current screen model, nothing else.

    batm-display [--state-dir D] [--screenshot-dir DIR] [--size 800x480] [--fullscreen]
                 [--rotation 0|90|180|270] [--admin-idle SECONDS] [--allow-fallback-driver]

Runs as an unprivileged user: it only talks to the agent's control socket.  The UI thread redraws
only when what is shown changes and otherwise sleeps in select() (display/wakeup.py says why not
pygame.event.wait(): in pygame-ce that polls every millisecond), so an idle kiosk costs no CPU;
it wakes early only for a timer that is running (a long press being held, the admin's idle
timeout, a lockout countdown).  Four sources feed it events: the agent link thread (screen
models), the admin request thread (answers), a signal thread (SIGTERM/SIGINT become a stop
event) and SDL itself (window events, touch, mouse, keyboard).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

DEFAULT_STATE_DIR = "/var/lib/batm-agent"
DEFAULT_SIZE = (800, 480)  # the official 7-inch Raspberry Pi panel


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 800x480, not {text!r}") from None
    if not (160 <= w <= 8192 and 120 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"size {w}x{h} is out of range (160x120 to 8192x8192)")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batm-display", description="Kiosk display of the BATM terminal agent.")
    parser.add_argument("--state-dir", type=Path,
                        default=Path(os.environ.get("BATM_STATE_DIR") or DEFAULT_STATE_DIR),
                        help="agent state directory holding control.sock "
                             "(default: $BATM_STATE_DIR or %(default)s)")
    parser.add_argument("--screenshot-dir", type=Path, default=None,
                        help="save NNN-<screen_id>.png (and latest.png) here on every change")
    parser.add_argument("--size", type=parse_size, default=DEFAULT_SIZE, metavar="WxH",
                        help="window size (default 800x480)")
    parser.add_argument("--fullscreen", action="store_true",
                        help="fill the screen (kiosk mode, mouse pointer hidden)")
    parser.add_argument("--rotation", type=int, choices=(0, 90, 180, 270),
                        default=_env_rotation(),
                        help="how the panel is mounted: the picture is turned clockwise by this "
                             "many degrees and touches are turned back "
                             "(default $BATM_DISPLAY_ROTATION or 0)")
    parser.add_argument("--admin-idle", type=float, default=60.0, metavar="SECONDS",
                        help="leave the advanced administration after this long without a "
                             "touch (default %(default)s)")
    parser.add_argument("--allow-fallback-driver", action="store_true",
                        help="run even if SDL did not give the wanted video driver (kmsdrm "
                             "on a Pi without X) or gave one that shows nothing")
    return parser


def _env_rotation() -> int:
    value = os.environ.get("BATM_DISPLAY_ROTATION", "0").strip() or "0"
    return int(value) if value in ("0", "90", "180", "270") else 0


def __getattr__(name: str):
    # `from display.app import Display` keeps working, without importing pygame before main()
    # has set SDL's environment.
    if name == "Display":
        from display.host import Display

        return Display
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _block_signals() -> None:
    # Block SIGTERM/SIGINT in this thread before any other thread exists (SDL's included):
    # threads inherit the mask, so only the signal thread's sigwait() ever receives them.
    # A Python signal handler would not do: it runs only when the main thread returns to the
    # interpreter, and the main thread sits in pygame.event.wait() inside C.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})


def _start_signal_thread(post) -> None:
    def wait_for_signal() -> None:
        signum = signal.sigwait({signal.SIGTERM, signal.SIGINT})
        print(f"batm-display: {signal.Signals(signum).name}, exiting", flush=True)
        post(signum)

    threading.Thread(target=wait_for_signal, name="signals", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _block_signals()
    # SDL would install its own SIGINT/SIGTERM handlers; the signal thread owns them instead.
    os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    # A fixed X11 WM_CLASS, whatever the interpreter is called, so the HIL rig can find the
    # window with `xdotool search --class batm-display`.
    os.environ.setdefault("SDL_VIDEO_X11_WMCLASS", "batm-display")
    from display.video import driver_problem, wanted_driver

    wanted, explicit = wanted_driver(os.environ)
    if wanted and not explicit:
        os.environ["SDL_VIDEODRIVER"] = wanted  # a Pi without X: the panel through KMS/DRM
    import pygame

    from display import fonts
    from display.admin.requests import AgentRequester
    from display.agent_link import AgentLink
    from display.host import Display
    from display.input import InputMapper
    from display.screenshots import ScreenshotWriter
    from display.wakeup import Waker, wait_plan

    try:
        pygame.display.init()
        pygame.font.init()
        flags = pygame.FULLSCREEN if args.fullscreen else 0
        size = args.size if (not args.fullscreen or argv_has_size(argv)) else (0, 0)
        window = pygame.display.set_mode(size, flags)
    except pygame.error as exc:
        asked = f"; asked SDL for the {wanted!r} video driver" if wanted else ""
        print(f"batm-display: cannot open a window: {exc}{asked} (is DISPLAY or a KMS/DRM "
              "device available to this user?)", file=sys.stderr)
        return 1
    driver = pygame.display.get_driver()
    problem = driver_problem(wanted, explicit, driver)
    if problem and not args.allow_fallback_driver:
        print(f"batm-display: refusing to start: {problem} (--allow-fallback-driver runs "
              "anyway)", file=sys.stderr)
        pygame.quit()
        return 1
    pygame.display.set_caption("BATM terminal")
    if args.fullscreen:
        pygame.mouse.set_visible(False)

    screenshots = None
    if args.screenshot_dir is not None:
        try:
            screenshots = ScreenshotWriter(args.screenshot_dir)
        except OSError as exc:
            print(f"batm-display: --screenshot-dir {args.screenshot_dir}: {exc.strerror}",
                  file=sys.stderr)
            pygame.quit()
            return 2

    agent_event = pygame.event.custom_type()
    answer_event = pygame.event.custom_type()
    stop_event = pygame.event.custom_type()
    waker = Waker()
    select_fds, select_timeout = wait_plan(driver, pygame.display.get_wm_info())
    wakes_on = "window system socket" if select_fds else (
        f"a {select_timeout} s timer" if select_timeout else "agent events only")
    print(f"batm-display: SDL video driver {driver}"
          f"{f' ({problem}; allowed)' if problem else ''}, "
          f"window {window.get_width()}x{window.get_height()}, rotation {args.rotation}, "
          f"idle wake-ups: {wakes_on}, agent socket {args.state_dir / 'control.sock'}",
          flush=True)

    def post(event_type: int, **attributes) -> None:
        # Called from the other threads: pygame.event.post is thread-safe, and the waker gets
        # the UI thread out of select() to look at the queue.
        try:
            pygame.event.post(pygame.event.Event(event_type, **attributes))
        except pygame.error:  # pygame already shut down: nothing left to tell
            return
        waker.wake()

    # Only the events this loop acts on are queued (TEXTINPUT is not: KEYDOWN carries the
    # character, and taking both would type it twice). Set before the threads start: blocking
    # a type also flushes queued events of that type.
    pygame.event.set_blocked(None)
    pygame.event.set_allowed([
        pygame.QUIT, pygame.WINDOWEXPOSED, pygame.WINDOWSIZECHANGED, agent_event, answer_event,
        stop_event, pygame.FINGERDOWN, pygame.FINGERMOTION, pygame.FINGERUP,
        pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP, pygame.MOUSEMOTION, pygame.KEYDOWN])
    _start_signal_thread(lambda signum: post(stop_event, signum=signum))
    requester = AgentRequester(
        args.state_dir / "control.sock",
        lambda on_answer, answer: post(answer_event, on_answer=on_answer, answer=answer))
    display = Display(window, screenshots, rotation=args.rotation, send=requester.send,
                      idle_timeout=args.admin_idle)
    mapper = InputMapper(window.get_size(), args.rotation)
    link = AgentLink.for_state_dir(
        args.state_dir,
        on_screen=lambda raw: post(agent_event, kind="screen", value=raw),
        on_down=lambda reason: post(agent_event, kind="down", value=reason),
    ).start()
    try:
        while True:
            # get() pumps SDL (reads the window system) and returns everything queued,
            # including what other threads posted.
            for event in pygame.event.get():
                if event.type in (pygame.QUIT, stop_event):
                    return 0
                if event.type == agent_event:
                    if event.kind == "screen":
                        display.agent_screen(event.value)
                    else:
                        display.agent_down(str(event.value))
                elif event.type == answer_event:
                    display.answer(event.on_answer, event.answer)
                elif event.type == pygame.WINDOWSIZECHANGED:
                    display.redraw()
                    mapper.window_size = display.window.get_size()
                elif event.type == pygame.WINDOWEXPOSED:
                    pygame.display.flip()
                else:
                    _input(display, mapper.map(event))
            now = time.monotonic()
            display.tick(now)
            # Drawing may have made SDL read the X connection dry into its own queue: look
            # there before sleeping on the socket (peek pumps too).
            if pygame.event.peek():
                continue
            waker.wait(select_fds, _timeout(select_timeout, display.next_deadline(), now))
    finally:
        link.stop()
        requester.stop()
        waker.close()
        fonts.clear_cache()
        pygame.quit()


def _input(display, mapped) -> None:
    from display.input import Key, Pointer

    if isinstance(mapped, Pointer):
        display.pointer(mapped)
    elif isinstance(mapped, Key):
        display.key(mapped)


def _timeout(select_timeout: float | None, deadline: float | None, now: float) -> float | None:
    """How long to sleep: until the next timer of the display, or the wait plan's timeout."""
    if deadline is None:
        return select_timeout
    left = max(0.0, deadline - now)
    return left if select_timeout is None else min(left, select_timeout)


def argv_has_size(argv: list[str] | None) -> bool:
    """Whether --size was given explicitly (fullscreen then uses it instead of native)."""
    args = sys.argv[1:] if argv is None else argv
    return any(a == "--size" or a.startswith("--size=") for a in args)


if __name__ == "__main__":
    sys.exit(main())
