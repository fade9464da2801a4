"""What a request's ``Host`` names: a host and a port, or nothing usable.

The ``Host`` header is the client's to write. aiohttp parses it lazily, when ``request.url`` is first asked
for, and raises there (``ValueError: Port out of range``, ``UnicodeError`` from IDNA) on a port of 99999 or a
byte outside ASCII: any code that asks would answer 500 with a traceback in the log. So the guard reads the
header once, with this parser, and answers ``400`` to what it cannot take; everything after it uses the
parsed value. Pure.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

NAME = re.compile(r"^[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?$")
"""A DNS name as a ``Host`` header carries it (lower case here; ``_`` as some internal names have it)."""
PORT = re.compile(r"^[0-9]{1,5}$")


@dataclass(frozen=True, slots=True)
class Addressed:
    """The host (lower case, no trailing dot, an IPv6 address without brackets) and the port, if one was
    given, that a request addressed."""

    host: str
    port: int | None

    def port_or(self, default: int) -> int:
        return self.port if self.port is not None else default


def parse_host(text: str) -> Addressed | None:
    """``localhost:8001``, ``Snap.Example.``, ``[::1]:8001``, ``127.0.0.1``; ``None`` for anything else
    (a port out of range, non-ASCII, spaces, an IPv6 address without brackets, a user part)."""
    if not text.isascii() or not text.isprintable() or " " in text:
        return None
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or ":" not in inside or not is_ip(inside):
            return None
        host = inside.lower()
    else:
        host, colon, after = text.partition(":")
        rest = colon + after
        host = host.lower().removesuffix(".")
        if not NAME.match(host):
            return None
    if rest in {"", ":"}:  # an empty port is allowed, and means the default
        return Addressed(host, None)
    if not rest.startswith(":") or not PORT.match(rest[1:]):
        return None
    port = int(rest[1:])
    return Addressed(host, port) if 0 < port < 65536 else None


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address (without brackets), not a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
