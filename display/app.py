"""batm-display: the kiosk window.  Shows the agent's current screen model, nothing else.

    batm-display [--state-dir D] [--screenshot-dir DIR] [--size 800x480] [--fullscreen]

Runs as an unprivileged user: it only reads the agent's control socket.  The UI thread redraws
only when the model changes and otherwise sleeps in select() (display/wakeup.py says why not
pygame.event.wait(): in pygame-ce that polls every millisecond), so an idle kiosk costs no CPU.
Three sources feed it events: the agent link thread (screen models), a signal thread
(SIGTERM/SIGINT become a stop event) and SDL itself (window events).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
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
    return parser


class Display:
    """The UI-thread state: the current model, and drawing it when it changes."""

    def __init__(self, window, screenshots=None):
        from display.model import ScreenModel
        from display.screens import STARTING

        self.window = window
        self.screenshots = screenshots
        self.model = None
        self.last_known = ScreenModel()  # serial/version for the display's own screens
        self.show(ScreenModel(screen=STARTING))

    def show(self, model) -> bool:
        """Draw model if it differs from what is shown; returns whether it redrew."""
        import pygame

        from display.render import render

        if self.model is not None and model.visual_key() == self.model.visual_key():
            return False
        self.model = model
        render(self.window, model)
        pygame.display.flip()
        if self.screenshots is not None:
            try:
                self.screenshots.save(self.window, model.screen)
            except (OSError, pygame.error) as exc:  # a full disk must not stop the kiosk
                print(f"batm-display: screenshot not saved: {exc}", file=sys.stderr, flush=True)
        return True

    def agent_screen(self, raw) -> None:
        from display.model import parse_screen

        model = parse_screen(raw)
        if model.serial or model.version:
            self.last_known = model
        self.show(model)

    def agent_down(self, reason: str) -> None:
        from display.model import ScreenModel, clean_text
        from display.screens import AGENT_UNREACHABLE

        self.show(ScreenModel(screen=AGENT_UNREACHABLE, serial=self.last_known.serial,
                              version=self.last_known.version, server=self.last_known.server,
                              detail=clean_text(reason)))

    def redraw(self) -> None:
        """After a resize the window surface is new: draw the same model again."""
        import pygame

        from display.render import render

        self.window = pygame.display.get_surface()
        if self.model is not None:
            render(self.window, self.model)
        pygame.display.flip()


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
    import pygame

    from display import fonts
    from display.agent_link import AgentLink
    from display.screenshots import ScreenshotWriter
    from display.wakeup import Waker, wait_plan

    try:
        pygame.display.init()
        pygame.font.init()
        flags = pygame.FULLSCREEN if args.fullscreen else 0
        size = args.size if (not args.fullscreen or argv_has_size(argv)) else (0, 0)
        window = pygame.display.set_mode(size, flags)
    except pygame.error as exc:
        print(f"batm-display: cannot open a window: {exc} (is DISPLAY or a KMS/DRM device "
              "available to this user?)", file=sys.stderr)
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
            return 2

    agent_event = pygame.event.custom_type()
    stop_event = pygame.event.custom_type()
    waker = Waker()
    select_fds, select_timeout = wait_plan(pygame.display.get_driver(),
                                           pygame.display.get_wm_info())
    wakes_on = "window system socket" if select_fds else (
        f"a {select_timeout} s timer" if select_timeout else "agent events only")
    print(f"batm-display: SDL video driver {pygame.display.get_driver()}, "
          f"window {window.get_width()}x{window.get_height()}, idle wake-ups: {wakes_on}, "
          f"agent socket {args.state_dir / 'control.sock'}", flush=True)

    def post(event_type: int, **attributes) -> None:
        # Called from the link and signal threads: pygame.event.post is thread-safe, and the
        # waker gets the UI thread out of select() to look at the queue.
        try:
            pygame.event.post(pygame.event.Event(event_type, **attributes))
        except pygame.error:  # pygame already shut down: nothing left to tell
            return
        waker.wake()

    # Only the events this loop acts on are queued; mouse motion and the like are dropped.
    # Set before the threads start: blocking a type also flushes queued events of that type.
    pygame.event.set_blocked(None)
    pygame.event.set_allowed([pygame.QUIT, pygame.WINDOWEXPOSED, pygame.WINDOWSIZECHANGED,
                              agent_event, stop_event])
    _start_signal_thread(lambda signum: post(stop_event, signum=signum))
    display = Display(window, screenshots)
    link = AgentLink.for_state_dir(
        args.state_dir,
        on_screen=lambda raw: post(agent_event, kind="screen", value=raw),
        on_down=lambda reason: post(agent_event, kind="down", value=reason),
    ).start()
    try:
        running = True
        while running:
            # get() pumps SDL (reads the window system) and returns everything queued,
            # including what other threads posted; then sleep until there is more.
            for event in pygame.event.get():
                if event.type in (pygame.QUIT, stop_event):
                    running = False
                    break
                if event.type == agent_event:
                    if event.kind == "screen":
                        display.agent_screen(event.value)
                    else:
                        display.agent_down(str(event.value))
                elif event.type == pygame.WINDOWSIZECHANGED:
                    display.redraw()
                elif event.type == pygame.WINDOWEXPOSED:
                    pygame.display.flip()
            else:  # the queue is empty (no break): sleep
                waker.wait(select_fds, select_timeout)
    finally:
        link.stop()
        waker.close()
        fonts.clear_cache()
        pygame.quit()
    return 0


def argv_has_size(argv: list[str] | None) -> bool:
    """Whether --size was given explicitly (fullscreen then uses it instead of native)."""
    args = sys.argv[1:] if argv is None else argv
    return any(a == "--size" or a.startswith("--size=") for a in args)


if __name__ == "__main__":
    sys.exit(main())
