"""ScreenRecorder: every screen a terminal shows, from its control socket, across restarts.

A thread subscribes to the agent's screen changes (docs/protocol.md §4) and records each model;
when the agent restarts (an upgrade restarts it into the new slot) it subscribes again. Screens
shown while no agent was listening cannot be seen by anyone, so a test asserts the screens it
expects as a subsequence, and relies on the recorder being connected while the agent runs.
"""

from __future__ import annotations

import threading
import time

from batm_common.control_client import ControlClient, ControlError

RECONNECT = 0.02


class ScreenRecorder:
    def __init__(self, state_dir: str):
        self.state_dir = state_dir
        self.screens: list[dict] = []
        self._stop = threading.Event()
        self._client: ControlClient | None = None
        self._thread = threading.Thread(target=self._run, name="screen-recorder", daemon=True)

    def __enter__(self) -> ScreenRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        client = self._client
        if client is not None:
            client.close()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._client = ControlClient(self.state_dir, timeout=None)
                for screen in self._client.screens():
                    self.screens.append(screen)
                    if self._stop.is_set():
                        return
            except (ControlError, OSError, ValueError):
                time.sleep(RECONNECT)
            finally:
                if self._client is not None:
                    self._client.close()

    def ids(self) -> list[str]:
        """Screen ids in order, consecutive repeats (progress updates) collapsed."""
        ids: list[str] = []
        for screen in list(self.screens):
            if not ids or ids[-1] != screen["screen"]:
                ids.append(screen["screen"])
        return ids

    def of(self, screen_id: str) -> list[dict]:
        return [s for s in list(self.screens) if s["screen"] == screen_id]


def is_subsequence(wanted: list[str], seen: list[str]) -> bool:
    it = iter(seen)
    return all(any(s == w for s in it) for w in wanted)
