"""The systemd watchdog, pinged from the asyncio event loop (WatchdogSec=, sd_watchdog_enabled(3)).

systemd sets $WATCHDOG_USEC (and $WATCHDOG_PID) when the unit has WatchdogSec=; the service must
then send "WATCHDOG=1" more often than that or be killed and restarted. The pings come from a
task on the event loop the daemon's work runs on, every half period: a loop blocked by a hung call
stops them, which is the point. A thread pinging on a timer would keep a dead daemon "alive".

    pinger = WatchdogPinger.from_environment()   # None when systemd asked for no watchdog
    if pinger:
        pinger.start()                           # inside the running loop
    ...
    pinger.status("pairing_code")                # STATUS= line, shown by `systemctl status`
    await pinger.stop()

Without a watchdog, sd_notify.status() sends STATUS= alone. Outside systemd everything here is
a no-op, like sd_notify.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping

from batm_common.sd_notify import sd_notify

Notify = Callable[[str], bool]


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of $WATCHDOG_USEC), or None when no watchdog applies to us.

    Like sd_watchdog_enabled(3): $WATCHDOG_PID, when set, must be this process (a child that
    inherited the environment must not ping on its parent's behalf).
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2


class WatchdogPinger:
    """Sends WATCHDOG=1 from the event loop every `interval` seconds until stopped."""

    def __init__(self, interval: float, notify: Notify | None = None) -> None:
        if interval <= 0:
            raise ValueError(f"watchdog interval must be positive, got {interval!r}")
        self.interval = interval
        self._notify = notify or sd_notify
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_environment(
        cls, env: Mapping[str, str] | None = None, notify: Notify | None = None
    ) -> WatchdogPinger | None:
        interval = watchdog_interval(env)
        return None if interval is None else cls(interval, notify)

    def start(self) -> None:
        """Start pinging; call from inside the running event loop. A second call is a no-op."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._ping_forever(), name="systemd-watchdog"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def status(self, text: str) -> bool:
        """One STATUS= line for `systemctl status` (the screen the terminal shows, say)."""
        return self._notify(f"STATUS={_one_line(text)}")

    async def _ping_forever(self) -> None:
        while True:
            self._notify("WATCHDOG=1")
            await asyncio.sleep(self.interval)


def _one_line(text: str) -> str:
    # sd_notify's format is newline-separated assignments: a newline would start a new one.
    return " ".join(text.split())
