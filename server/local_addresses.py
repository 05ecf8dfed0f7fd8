"""Which addresses a listen host stands for: the names the server certificate must carry.

The gate usually listens on the wildcard address, so "the listen host" means every address of
this machine. Linux-only, like the product: IPv4 addresses come from SIOCGIFADDR per interface,
IPv6 from /proc/net/if_inet6. Link-local IPv6 addresses are left out (they need a scope id, which
a certificate cannot carry).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import socket
import struct
from pathlib import Path

_SIOCGIFADDR = 0x8915
_WILDCARDS = {"0.0.0.0", "::", ""}


def _interface_ipv4(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(
                sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15])
            )
        except OSError:
            return None  # the interface has no IPv4 address
    return socket.inet_ntoa(packed[20:24])


def _ipv6_addresses() -> list[str]:
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            fields = line.split()
            if not fields:
                continue
            address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
            if not address.is_link_local:
                found.append(str(address))
    return found


def machine_addresses() -> list[str]:
    """Every IPv4 and IPv6 address of this machine's interfaces."""
    found: list[str] = []
    with contextlib.suppress(OSError):
        for _index, name in socket.if_nameindex():
            address = _interface_ipv4(name)
            if address:
                found.append(address)
    found.extend(_ipv6_addresses())
    return found


def addresses_of(listen_host: str) -> list[str]:
    """The addresses and names a client may use to reach a server listening on listen_host."""
    if listen_host in _WILDCARDS:
        return machine_addresses()
    try:
        ipaddress.ip_address(listen_host)
    except ValueError:
        # A host name: the certificate carries the name and what it resolves to.
        names = [listen_host]
        with contextlib.suppress(OSError):
            for info in socket.getaddrinfo(listen_host, None, proto=socket.IPPROTO_TCP):
                names.append(str(info[4][0]))
        return names
    return [listen_host]


def default_advertised(listen_host: str) -> list[str]:
    """The listen host's addresses plus loopback, without duplicates, in a stable order."""
    seen: dict[str, None] = {}
    for entry in [*addresses_of(listen_host), "127.0.0.1", "localhost"]:
        seen.setdefault(entry, None)
    return list(seen)
