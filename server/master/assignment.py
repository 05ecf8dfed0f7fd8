"""Which broker a terminal uses when the fleet has several: rendezvous hashing over a list.

`batm-server run --brokers HOST:PORT,…` lists the fleet's brokers as terminals reach them (every
replica is given the same list; each replica runs one of them, its own `--mqtt-listen`). A
terminal's broker is the one with the highest SHA-256(serial, broker) score: every replica
computes the same answer without asking anybody, the fleet spreads evenly (±1 % at 50,000 over
4 brokers, tests/test_fleet_server.py), and adding a broker moves only the terminals that the new
one wins (≈ 1/n of them), never one between two old brokers.

The assignment is made when the terminal asks for its credentials (after pairing) and returned
in the answer's `broker`; the check-in answers the same address, so a terminal follows a list
that changed. A replica creates accounts only on its own broker: a credentials request for a
terminal assigned to another broker is answered 503 naming that broker (the terminal retries;
docs/deployment.md says how a load balancer routes it to the right replica at once).
"""

from __future__ import annotations

import hashlib

from batm_common.hostaddr import AddressError, ServerAddress, parse_server_address


def parse_brokers(text: str) -> list[ServerAddress]:
    """`HOST:PORT,HOST:PORT,…`; AddressError naming the entry that is wrong."""
    brokers = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            brokers.append(parse_server_address(part))
        except AddressError as exc:
            raise AddressError(f"broker {part!r}: {exc}") from None
    if not brokers:
        raise AddressError("needs at least one HOST:PORT")
    if len({str(b) for b in brokers}) != len(brokers):
        raise AddressError("a broker is listed twice")
    return brokers


def _score(serial: str, broker: ServerAddress) -> bytes:
    return hashlib.sha256(f"{serial}\n{broker}".encode()).digest()


def assign(serial: str, brokers: list[ServerAddress]) -> ServerAddress:
    """The terminal's broker: the list's highest score for this serial."""
    if not brokers:
        raise ValueError("no brokers to assign from")
    return max(brokers, key=lambda broker: _score(serial, broker))
