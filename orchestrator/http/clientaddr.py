"""Who a request comes from: the address the service counts and logs a client by.

The client is the connection's peer, unless that peer is a proxy named with ``--trusted-proxy``: then it is
the right-most address of ``X-Forwarded-For`` that is not itself a trusted proxy. Each proxy appends the
address it got the request from, so everything left of the last trusted hop was written by the client and
proves nothing; a client that sends its own ``X-Forwarded-For`` only adds entries left of the real one. From
a peer that is not trusted the header is ignored altogether (anyone can send it).

An entry that is not an address (``unknown``, a name, garbage) ends the walk: the client is then the last
trusted hop before it, the nearest address the service can vouch for.

Counting by address: an IPv6 client is counted by its /64. A home or a cloud host gets a whole /64 (SLAAC,
privacy addresses), so one attacker can pick a fresh address for every connection; a /64 is what one site
holds. One subscriber holds more than one /64 (a home gets a /56), so the stream caps count the /56 too
(``network``). IPv4 addresses are counted one by one (a NAT puts many people behind one, which the caps
allow for).
An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, from a dual-stack socket) is the IPv4 address.

The functions down to :class:`ClientAddresses` are pure; that class applies them to aiohttp requests.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPV6_GROUP_PREFIX = 64
IPV6_NETWORK_PREFIX = 56
"""What a home ISP hands one subscriber; the stream caps count it as well as each /64 in it."""
FORWARDED_FOR = "X-Forwarded-For"
FORWARDED_PROTO = "X-Forwarded-Proto"
_WITH_PORT = re.compile(r"^\[(?P<v6>[^\]]+)\](?::[0-9]{1,5})?$|^(?P<v4>[0-9.]+):[0-9]{1,5}$")
"""``[2001:db8::1]:443`` and ``192.0.2.1:5678``: some proxies append the client's port too."""


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """A request's client: ``address`` as logged, ``key`` as counted (the /64 of an IPv6 address), and for
    IPv6 the wider ``network`` counted too (its /56)."""

    address: str
    key: str
    network: str | None = None


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The networks whose ``X-Forwarded-For`` is believed (``--trusted-proxy``)."""

    networks: tuple[Network, ...] = ()

    def trusts(self, address: IPAddress) -> bool:
        return any(address.version == network.version and address in network for network in self.networks)


def parse_network(text: str) -> Network:
    """``10.0.0.5``, ``10.0.0.0/24``, ``::1`` or ``fd00::/8``; :class:`ValueError` for anything else, and for
    a network with host bits set (``10.0.0.5/24`` is a typo for one address or for its network)."""
    word = text.strip()
    if "%" in word:  # a scope (fe80::1%eth0) names an interface, not a proxy
        raise ValueError(f"{word!r} has a scope; give the address alone")
    network = ipaddress.ip_network(word, strict=True)
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        mapped = network.network_address.ipv4_mapped
        return ipaddress.IPv4Network(f"{mapped}/{max(0, network.prefixlen - 96)}")
    return network


def parse_address(text: str) -> IPAddress | None:
    """An address from a peer name or an ``X-Forwarded-For`` entry (a port and brackets allowed), IPv4-mapped
    IPv6 as IPv4; ``None`` if it is not an address."""
    word = text.strip()
    match = _WITH_PORT.match(word)
    if match is not None:
        word = match["v6"] or match["v4"]
    try:
        address = ipaddress.ip_address(word)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: TrustedProxies) -> str:
    """The client's address, from the connection's ``peer`` and the request's ``X-Forwarded-For`` values (the
    header may come more than once: its values are one list, in order)."""
    address = parse_address(peer or "")
    if address is None:
        return peer or "?"  # a Unix socket: there is no address, and no proxy to trust
    if not trusted.trusts(address):
        return str(address)
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        parsed = parse_address(hop)
        if parsed is None:
            break
        address = parsed
        if not trusted.trusts(parsed):
            break
    return str(address)


def group_key(address: str) -> str:
    """What ``address`` is counted under: itself, or for IPv6 its /64 (``2001:db8:1:2::/64``)."""
    parsed = parse_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(parsed), IPV6_GROUP_PREFIX), strict=False))
    return address


def network_key(address: str) -> str | None:
    """The wider network ``address`` is counted under as well: for IPv6 its /56, for IPv4 none."""
    parsed = parse_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(parsed), IPV6_NETWORK_PREFIX), strict=False))
    return None


def identify(peer: str | None, forwarded_for: Iterable[str], trusted: TrustedProxies) -> ClientAddress:
    address = client_address(peer, forwarded_for, trusted)
    return ClientAddress(address, group_key(address), network_key(address))


# ------------------------------------------------------------------------------------------ for aiohttp
class ClientAddresses:
    """The app's rule for who a request is from; lives in the app under :data:`CLIENT_ADDRESSES`."""

    def __init__(self, trusted: TrustedProxies) -> None:
        self.trusted = trusted
        self._hinted = False

    def of(self, request: web.Request) -> ClientAddress:
        """``request``'s client, worked out once per request."""
        if CLIENT in request:
            return request[CLIENT]
        forwarded = request.headers.getall(FORWARDED_FOR, ())
        client = identify(request.remote, forwarded, self.trusted)
        request[CLIENT] = client
        if forwarded and not self._hinted:
            peer = parse_address(request.remote or "")
            if peer is not None and not self.trusted.trusts(peer):
                self._hint(peer)
        return client

    def _hint(self, peer: IPAddress) -> None:
        # Once: a reverse proxy nobody named is worth saying, but a client that sends the header itself is not
        # worth a line per request.
        self._hinted = True
        log.warning(
            "a request from %s carries %s, which is ignored: %s is not a --trusted-proxy (behind a reverse "
            "proxy, name it, or all its clients count as one address)",
            peer,
            FORWARDED_FOR,
            peer,
        )


CLIENT_ADDRESSES = web.AppKey("client_addresses", ClientAddresses)
CLIENT = web.RequestKey("client_address", ClientAddress)


def install(app: web.Application, trusted: TrustedProxies) -> None:
    app[CLIENT_ADDRESSES] = ClientAddresses(trusted)


def reached_over_https(request: web.Request) -> bool:
    """Whether the client reached the service over HTTPS: the connection's own TLS, or a ``--trusted-proxy``
    that says so in ``X-Forwarded-Proto`` (its last value: the one the nearest proxy wrote)."""
    if request.secure:
        return True
    addresses = request.app.get(CLIENT_ADDRESSES)
    peer = parse_address(request.remote or "")
    if addresses is None or peer is None or not addresses.trusted.trusts(peer):
        return False
    protos = [p.strip().lower() for value in request.headers.getall(FORWARDED_PROTO, ()) for p in value.split(",")]
    return bool(protos) and protos[-1] == "https"


def client_of(request: web.Request) -> ClientAddress:
    """``request``'s client by the app's rule; by its peer alone in an app without one."""
    addresses = request.app.get(CLIENT_ADDRESSES)
    if addresses is None:
        return identify(request.remote, (), TrustedProxies())
    return addresses.of(request)
