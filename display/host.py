"""The UI thread's state: the terminal screen or the advanced administration, drawn on change.

Display owns the window. It shows the agent's current screen model — or, while the admin is
open, the admin page (the agent's model is kept and shown again when the admin closes). It
draws on an upright canvas that is turned onto the window for a rotated panel (input.py maps
touches back), and draws only when what is shown changed: an idle kiosk costs nothing.

With a screenshot writer, every visible change is saved as NNN-<screen id>.png and described
in screen.json (the admin page's view: title, message, field text; never PIN digits), which is
how the HIL suite reads what the technician sees.
"""

from __future__ import annotations

import sys
import time

import pygame

from display.admin import view as admin_view
from display.admin.controller import IDLE_TIMEOUT, AdminController
from display.admin.draw import render_admin
from display.admin.gesture import LongPress
from display.admin.widgets import Layout, scale_of
from display.input import Key, Pointer, is_admin_shortcut, logical_size
from display.model import ScreenModel, clean_text, parse_screen
from display.render import render
from display.screens import AGENT_UNREACHABLE, STARTING


def _no_agent(message: dict, on_answer) -> None:
    on_answer({"ok": False, "code": "unreachable", "error": "no connection to the agent"})


class Display:
    def __init__(self, window, screenshots=None, *, rotation: int = 0, send=None,
                 idle_timeout: float = IDLE_TIMEOUT, clock=time.monotonic):
        self.window = window
        self.rotation = rotation
        self.screenshots = screenshots
        self.clock = clock
        self.canvas = self._make_canvas()
        self.model: ScreenModel | None = None  # the agent's screen (shown unless admin is open)
        self.last_known = ScreenModel()  # serial/version for the display's own screens
        self.admin = AdminController(send or _no_agent, idle_timeout=idle_timeout,
                                     terminal=lambda: self.model or ScreenModel())
        self.gesture = LongPress()
        self.layout: Layout | None = None  # of the admin page on screen, for hit tests
        self._shown: object = None  # what is on screen: a model's visual key or an AdminView
        self._saved: object = None  # what the last screenshot showed
        self.show(ScreenModel(screen=STARTING))

    def _make_canvas(self) -> pygame.Surface:
        if self.rotation == 0:
            return self.window
        return pygame.Surface(logical_size(self.window.get_size(), self.rotation))

    # -- the agent's screen -----------------------------------------------------------------

    def show(self, model: ScreenModel) -> bool:
        """Make model the terminal screen; draw it if it changed and no admin page is up.
        Returns whether it redrew."""
        if self.model is not None and model.visual_key() == self.model.visual_key():
            return False
        self.model = model
        return self.refresh()

    def agent_screen(self, raw) -> None:
        model = parse_screen(raw)
        if model.serial or model.version:
            self.last_known = model
        self.show(model)

    def agent_down(self, reason: str) -> None:
        self.show(ScreenModel(screen=AGENT_UNREACHABLE, serial=self.last_known.serial,
                              version=self.last_known.version, server=self.last_known.server,
                              detail=clean_text(reason)))

    # -- drawing ----------------------------------------------------------------------------

    def refresh(self, force: bool = False) -> bool:
        """Draw whatever should be on screen now, if it differs from what is."""
        if self.admin.active:
            view = self.admin.view()
            if not force and view == self._shown:
                return False
            self.layout = render_admin(self.canvas, view)
            self._shown = view
            self._present(view.screen, view.without_press(), {"screen": view.screen,
                                                               "admin": view.public()})
            return True
        self.layout = None
        model = self.model or ScreenModel(screen=STARTING)
        key = model.visual_key()
        if not force and key == self._shown:
            return False
        render(self.canvas, model)
        self._shown = key
        self._present(model.screen, key, {"screen": model.screen, "title": model.title,
                                          "text": model.text, "detail": model.detail,
                                          "pairing_code": model.pairing_code})
        return True

    def _present(self, screen_id: str, saved_key: object, status: dict) -> None:
        if self.canvas is not self.window:
            self.window.blit(pygame.transform.rotate(self.canvas, -self.rotation), (0, 0))
        pygame.display.flip()
        if self.screenshots is None or saved_key == self._saved:
            return  # a pressed-button highlight alone is not worth a screenshot
        self._saved = saved_key
        try:
            self.screenshots.save(self.canvas, screen_id)
            self.screenshots.save_status(status)
        except (OSError, pygame.error) as exc:  # a full disk must not stop the kiosk
            print(f"batm-display: screenshot not saved: {exc}", file=sys.stderr, flush=True)

    def redraw(self) -> None:
        """After a resize the window surface is new: draw the same thing again."""
        self.window = pygame.display.get_surface()
        self.canvas = self._make_canvas()
        self.refresh(force=True)

    # -- input and time ---------------------------------------------------------------------

    def pointer(self, event: Pointer, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        if not self.admin.active:
            if event.kind == "down":
                self.gesture.down(event.pos, now, scale_of(self.canvas.get_size()))
            elif event.kind == "move":
                self.gesture.move(event.pos)
            else:
                self.gesture.up()
            return
        hit = self.layout.hit(event.pos) if self.layout else None
        key = hit.key if hit else None
        if event.kind == "down":
            self.admin.touched(now)
            self.admin.press(key)
        elif event.kind == "move":
            if self.admin.pressed is not None and key != self.admin.pressed:
                self.admin.press(None)  # slid off the button: let go without activating
        else:
            self.admin.release(key, now)
        self.refresh()

    def key(self, event: Key, now: float | None = None) -> None:
        import pygame as pg

        now = self.clock() if now is None else now
        if is_admin_shortcut(event):
            if not self.admin.active:
                self.admin.open(now)
        elif self.admin.active:
            action = {pg.K_RETURN: "enter", pg.K_KP_ENTER: "enter", pg.K_BACKSPACE: "backspace",
                      pg.K_ESCAPE: "escape"}.get(event.key)
            if action:
                self.admin.keyboard_action(action, now)
            elif event.text:
                self.admin.type_text(event.text, now)
        self.refresh()

    def tick(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        if self.gesture.due(now) and not self.admin.active:
            self.admin.open(now)
        self.admin.tick(now)
        self.refresh()

    def next_deadline(self) -> float | None:
        times = [t for t in (self.gesture.deadline(), self.admin.deadline()) if t is not None]
        return min(times) if times else None

    def answer(self, on_answer, answer: dict) -> None:
        """An agent answer to an admin request, on the UI thread."""
        on_answer(answer)
        self.refresh()

    @property
    def showing(self) -> str:
        """The screen id on screen now."""
        if self.admin.active:
            return self.admin.page
        return (self.model or ScreenModel(screen=STARTING)).screen


__all__ = ["Display", "admin_view"]
