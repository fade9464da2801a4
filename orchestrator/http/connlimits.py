"""How many connections may be open, and who may open one more: checked the moment a connection is accepted,
before a byte of it is read.

Every connection holds a file descriptor from its accept on, whatever it sends: an idle one, or one that
sends its request head a byte a minute, holds it as surely as an event stream. Once the process runs out, the
job cannot get its pipes, and the history, the state, the progress file and the logs cannot be opened. So:

- **Total.** At most :attr:`ConnectionLimits.total` connections are open; the rest of the descriptor limit
  is kept for the service's own files, the job's pipes, SQLite's companions and the outgoing notifications
  (:func:`derived_total`). Event and log streams are connections too, and count here as well as in their
  own rooms (orchestrator/http/streamlimits.py).
- **Per client.** One client address (an IPv6 client by its /64, as the stream caps count) may hold at most
  :attr:`ConnectionLimits.per_client`, and never more than half the total, so one script cannot take it all.
  A ``--trusted-proxy`` is not capped by address: every client behind it comes from its address, and their
  own addresses are known only from each request's ``X-Forwarded-For``, which has not been read yet.

A connection over a cap is closed at once, by the listening socket's ``accept`` (:class:`GatedListener`):
asyncio takes up to a backlog's worth of connections in one go and makes their transports later, so a check
in the protocol would let a burst of 128 hold descriptors past the cap first. Each admitted connection gives
its place back when it is closed (:class:`GatedConnection`). Refusals are logged once per minute-long spell
(orchestrator/core/spell.py): the first says who and why; the rest are counted and said with the next such line.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from orchestrator.config import connections_allowed
from orchestrator.core.spell import Spell
from orchestrator.http.clientaddr import TrustedProxies, group_key, parse_address

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    total: int
    """Open connections in all; 0: no cap."""
    per_client: int
    """Open connections from one client address; 0: no cap."""


derived_total = connections_allowed
"""The connections a process with a descriptor limit may hold (orchestrator/config.py, where the stream caps
are derived from it too)."""


def limits_for(per_client: int, total: int) -> ConnectionLimits:
    """``per_client`` as asked, but never more than half of ``total``: one address must leave room for others.
    (``0`` stays ``0``: no cap by address, as asked.)"""
    if total and per_client:
        per_client = min(per_client, max(1, total // 2))
    return ConnectionLimits(total=total, per_client=per_client)


class Over(StrEnum):
    """Which cap a refused connection was over."""

    TOTAL = "total"
    CLIENT = "client"


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted connection's place: give it back with :meth:`ConnectionGate.release`."""

    key: str | None
    """The client address it is counted under; ``None``: not counted by address (a trusted proxy)."""


class ConnectionGate:
    """The open connections, by total and by client address. Admission and release are synchronous, so a
    burst of accepts cannot all pass the check before the first is counted."""

    def __init__(
        self,
        limits: ConnectionLimits,
        trusted: TrustedProxies,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.limits = limits
        self._trusted = trusted
        self._clock = clock
        self.open = 0
        self._by_client: Counter[str] = Counter()
        self._spells = {over: Spell() for over in Over}

    def from_client(self, key: str) -> int:
        return self._by_client[key]

    def admit(self, peer: object) -> Ticket | None:
        """A ticket for a connection from ``peer`` (the socket's peer name), or ``None``: close it."""
        address = _address_of(peer)
        parsed = parse_address(address) if address is not None else None
        key = address
        if parsed is not None:
            # As the stream caps count: an IPv4-mapped address as IPv4, IPv6 by its /64; a trusted proxy not at all.
            key = None if self._trusted.trusts(parsed) else group_key(str(parsed))
        if self.limits.total and self.open >= self.limits.total:
            self._refused(Over.TOTAL, key or address or "?")
            return None
        if key is not None and self.limits.per_client and self._by_client[key] >= self.limits.per_client:
            self._refused(Over.CLIENT, key)
            return None
        self.open += 1
        if key is not None:
            self._by_client[key] += 1
        return Ticket(key)

    def release(self, ticket: Ticket) -> None:
        self.open -= 1
        if ticket.key is not None:
            self._by_client[ticket.key] -= 1
            if self._by_client[ticket.key] <= 0:
                del self._by_client[ticket.key]  # only clients with a connection open are kept

    def _refused(self, over: Over, client: str) -> None:
        held = self._spells[over].hit(client, self._clock())
        if held is None:
            return
        if over is Over.TOTAL:
            log.warning(
                "%d connections open, the most allowed (the rest of the descriptor limit is kept for the job and "
                "the service's files): closing new ones at once (%s's first)%s",
                self.open,
                client,
                held.text(),
            )
        else:
            log.warning(
                "client %s holds %d connections, the most one address may: closing its new ones at once%s",
                client,
                self.limits.per_client,
                held.text(),
            )


def _address_of(peer: object) -> str | None:
    """The host of a socket's peer name: ``(host, port)`` or ``(host, port, flow, scope)``; ``None`` for
    anything else (a Unix socket)."""
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return None


# ------------------------------------------------------------------------------------------ the sockets
MAX_REFUSED_PER_ACCEPT = 16
"""Refusals in one ``accept`` call before it says "none waiting", which ends asyncio's accept round: a client
that reconnects as fast as it is cut must not keep the event loop from everything else. The rest wait in the
listen backlog for the next round."""


class GatedListener(socket.socket):
    """A listening socket whose ``accept`` (which asyncio calls) closes the connections over a cap at once and
    hands on only those the gate admits. Make one with :func:`gated`."""

    gate: ConnectionGate

    def accept(self) -> tuple[socket.socket, Any]:
        for _ in range(MAX_REFUSED_PER_ACCEPT):
            conn, address = super().accept()
            ticket = self.gate.admit(address)
            if ticket is None:
                conn.close()
                continue
            admitted = GatedConnection(conn.family, conn.type, conn.proto, fileno=conn.detach())
            admitted.hold(self.gate, ticket)
            return admitted, address
        raise BlockingIOError("more connections wait; taken at the next call")


class GatedConnection(socket.socket):
    """An admitted connection: closing it gives its place back (once)."""

    _gate: ConnectionGate | None = None
    _ticket: Ticket | None = None

    def hold(self, gate: ConnectionGate, ticket: Ticket) -> None:
        self._gate, self._ticket = gate, ticket

    def close(self) -> None:
        super().close()
        gate, ticket = self._gate, self._ticket
        self._gate, self._ticket = None, None
        if gate is not None and ticket is not None:
            gate.release(ticket)


def gated(sock: socket.socket, gate: ConnectionGate) -> GatedListener:
    """``sock`` (bound and listening) as a :class:`GatedListener`; ``sock`` itself is no longer usable."""
    listener = GatedListener(sock.family, sock.type, sock.proto, fileno=sock.detach())
    listener.setblocking(False)
    listener.gate = gate
    return listener
