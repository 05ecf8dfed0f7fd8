"""Validation of the server address a technician types: HOST[:PORT].

Accepted: IPv4 dotted quads, IPv6 (bracketed when a port follows), RFC 1123 host names, and a port
from 1 to 65535. Everything else is refused with a sentence saying what is wrong, because the
technician at the kiosk has nothing else to go on.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DEFAULT_GATE_PORT = 8443
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


class AddressError(ValueError):
    """The address cannot be used; str() says why, for a person."""


@dataclass(frozen=True)
class ServerAddress:
    host: str
    port: int = DEFAULT_GATE_PORT

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


def parse_port(text: str) -> int:
    if not text:
        raise AddressError("the port is empty")
    if not text.isdigit() or not text.isascii():
        raise AddressError(f"the port {text!r} is not a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise AddressError(f"the port {port} is outside 1-65535")
    return port


def validate_host(host: str) -> str:
    """Return the host in canonical form, or raise AddressError."""
    if not host:
        raise AddressError("the host is empty")
    if not host.isascii():
        raise AddressError("the host contains non-ASCII characters (use the IDNA form, xn--…)")
    if any(ch.isspace() for ch in host):
        raise AddressError("the host contains spaces")
    if ":" in host:
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError as exc:
            raise AddressError(f"{host!r} is not a valid IPv6 address") from exc
    if re.fullmatch(r"[0-9.]+", host):
        # All digits and dots: it must be an IPv4 address, never a host name (RFC 1123 §2.1).
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError as exc:
            raise AddressError(f"{host!r} is not a valid IPv4 address") from exc
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253:
        raise AddressError("the host name is longer than 253 characters")
    for label in name.split("."):
        if not label:
            raise AddressError(f"the host name {host!r} has an empty label (two dots in a row?)")
        if len(label) > 63:
            raise AddressError(f"the host name label {label[:20]!r}… is longer than 63 characters")
        if not _LABEL.match(label):
            raise AddressError(
                f"the host name label {label!r} may hold only letters, digits and inner hyphens"
            )
    return name.lower()


def parse_server_address(text: str, default_port: int = DEFAULT_GATE_PORT) -> ServerAddress:
    """Parse "host", "host:port", "1.2.3.4:8443", "[2001:db8::1]:8443" or a bare IPv6 address."""
    if not isinstance(text, str):
        raise AddressError("the server address must be text")
    text = text.strip()
    if not text:
        raise AddressError("the server address is empty")
    if len(text) > 300:
        raise AddressError("the server address is too long")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise AddressError("the IPv6 address has no closing ']'")
        host_part, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise AddressError(f"unexpected {rest!r} after the IPv6 address")
        port = parse_port(rest[1:]) if rest else default_port
        if not host_part:
            raise AddressError("the host is empty")
        try:
            host = str(ipaddress.IPv6Address(host_part))
        except ValueError as exc:
            raise AddressError(f"{host_part!r} is not a valid IPv6 address") from exc
        return ServerAddress(host, port)
    if text.count(":") > 1:
        return ServerAddress(validate_host(text), default_port)  # bare IPv6, no port
    host_part, sep, port_part = text.partition(":")
    port = parse_port(port_part) if sep else default_port
    return ServerAddress(validate_host(host_part), port)
