"""The systemd watchdog pinger: pings from the event loop at half the period, stops when it does."""

import asyncio
import contextlib
import os
import socket
import time

import pytest

from batm_common.watchdog import WatchdogPinger, watchdog_interval


def test_the_interval_is_half_of_watchdog_usec():
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0


@pytest.mark.parametrize("env", [{}, {"WATCHDOG_USEC": "0"}, {"WATCHDOG_USEC": "soon"}])
def test_no_watchdog_without_a_period(env):
    assert watchdog_interval(env) is None
    assert WatchdogPinger.from_environment(env) is None


def test_a_watchdog_meant_for_another_process_is_not_ours():
    other = str(os.getpid() + 1)
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": other}) is None
    mine = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": mine}) == 1.0


def test_a_non_positive_interval_is_refused():
    with pytest.raises(ValueError, match="positive"):
        WatchdogPinger(0)


def test_pings_keep_coming_while_the_loop_runs():
    sent = []

    async def scenario():
        pinger = WatchdogPinger(0.01, notify=lambda m: sent.append(m) or True)
        pinger.start()
        pinger.start()  # a second start does not double the pings
        await asyncio.sleep(0.1)
        await pinger.stop()

    asyncio.run(scenario())
    assert 5 <= sent.count("WATCHDOG=1") <= 12


def test_a_blocked_loop_sends_no_pings():
    sent = []

    async def scenario():
        pinger = WatchdogPinger(0.01, notify=lambda m: sent.append(time.monotonic()) or True)
        pinger.start()
        await asyncio.sleep(0.05)
        blocked_at = time.monotonic()
        time.sleep(0.2)  # a hung call on the loop: what the watchdog exists to catch
        resumed_at = time.monotonic()
        await asyncio.sleep(0.03)
        await pinger.stop()
        return blocked_at, resumed_at

    blocked_at, resumed_at = asyncio.run(scenario())
    assert not [t for t in sent if blocked_at < t < resumed_at]
    assert [t for t in sent if t >= resumed_at], "pings resume once the loop runs again"


def test_no_pings_after_stop():
    sent = []

    async def scenario():
        pinger = WatchdogPinger(0.01, notify=lambda m: sent.append(m) or True)
        pinger.start()
        await asyncio.sleep(0.03)
        await pinger.stop()
        count = len(sent)
        await asyncio.sleep(0.05)
        return count

    assert asyncio.run(scenario()) == len(sent)


def test_status_is_one_line():
    sent = []
    pinger = WatchdogPinger(1, notify=lambda m: sent.append(m) or True)
    pinger.status("pairing_code\nWATCHDOG=1")
    assert sent == ["STATUS=pairing_code WATCHDOG=1"]


def test_pings_and_status_reach_the_notify_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        env = {"WATCHDOG_USEC": "20000", "WATCHDOG_PID": str(os.getpid())}

        async def scenario():
            pinger = WatchdogPinger.from_environment(env)
            pinger.start()
            await asyncio.sleep(0.02)
            pinger.status("in_service")
            await pinger.stop()

        asyncio.run(scenario())
        server.setblocking(False)
        received = []
        with contextlib.suppress(BlockingIOError):
            while True:
                received.append(server.recv(256))
    assert received[0] == b"WATCHDOG=1"
    assert b"STATUS=in_service" in received
