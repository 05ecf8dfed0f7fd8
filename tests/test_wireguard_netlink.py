"""Netlink calls of batm_common.wireguard work from the agent's event-loop thread too.

pyroute2 runs its synchronous API on an asyncio loop of its own; called from a thread that already
runs a loop (the agent's, at shutdown) it used to fail with "This event loop is already running"
and leave a "coroutine … was never awaited" warning, and delete() swallowed the failure, leaving
the interface behind."""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings

from batm_common.wireguard import WgInterface, link_index


def test_link_lookup_works_inside_a_running_event_loop() -> None:
    async def from_the_loop() -> tuple[int | None, bool]:
        return link_index("lo"), WgInterface("wg-absent0").exists()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index, exists = asyncio.run(from_the_loop())
        gc.collect()  # an un-awaited coroutine warns when it is collected
    assert index == socket.if_nametoindex("lo")
    assert exists is False
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_link_lookup_outside_a_loop_runs_in_place() -> None:
    assert link_index("lo") == socket.if_nametoindex("lo")
    assert link_index("no-such-link0") is None
