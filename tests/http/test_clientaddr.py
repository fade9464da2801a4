"""Who a request comes from (orchestrator/http/clientaddr.py), as a table: the peer, its ``X-Forwarded-For``, the
trusted proxies, and the address the service counts and logs."""

from __future__ import annotations

import pytest

from orchestrator.http.clientaddr import (
    ClientAddress,
    TrustedProxies,
    client_address,
    group_key,
    identify,
    network_key,
    parse_network,
)

PROXIES = TrustedProxies((parse_network("127.0.0.1"), parse_network("10.0.0.0/8"), parse_network("fd00::/8")))
NONE = TrustedProxies()


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        # No trusted proxy: the header is ignored, whatever it says.
        ("192.0.2.1", ["203.0.113.5"], NONE, "192.0.2.1"),
        ("127.0.0.1", ["203.0.113.5"], NONE, "127.0.0.1"),
        # A peer that is not a trusted proxy: ignored too (anyone can send the header).
        ("192.0.2.1", ["203.0.113.5"], PROXIES, "192.0.2.1"),
        # A trusted proxy: the right-most address that is not a trusted proxy.
        ("127.0.0.1", ["203.0.113.5"], PROXIES, "203.0.113.5"),
        ("127.0.0.1", ["203.0.113.5, 10.1.2.3"], PROXIES, "203.0.113.5"),
        ("127.0.0.1", ["198.51.100.7, 203.0.113.5"], PROXIES, "203.0.113.5"),  # the client's own entry is left
        ("127.0.0.1", ["198.51.100.7", "203.0.113.5, 10.0.0.2"], PROXIES, "203.0.113.5"),  # the header twice
        ("127.0.0.1", [" 203.0.113.5 ,, 10.0.0.2 "], PROXIES, "203.0.113.5"),  # blanks and empty entries
        # Ports and brackets some proxies add.
        ("127.0.0.1", ["203.0.113.5:4711"], PROXIES, "203.0.113.5"),
        ("127.0.0.1", ["[2001:db8::7]:443"], PROXIES, "2001:db8::7"),
        ("127.0.0.1", ["2001:db8::7"], PROXIES, "2001:db8::7"),
        # No header, or only trusted hops: the farthest trusted hop.
        ("127.0.0.1", [], PROXIES, "127.0.0.1"),
        ("127.0.0.1", ["10.0.0.9, 10.0.0.2"], PROXIES, "10.0.0.9"),
        # Not an address: the walk ends at the last trusted hop before it.
        ("127.0.0.1", ["unknown"], PROXIES, "127.0.0.1"),
        ("127.0.0.1", ["203.0.113.5, unknown, 10.0.0.2"], PROXIES, "10.0.0.2"),
        ("127.0.0.1", ["evil.example"], PROXIES, "127.0.0.1"),
        ("127.0.0.1", ["１.２.３.４"], PROXIES, "127.0.0.1"),  # noqa: RUF001 (full-width digits are no address)
        # IPv4-mapped IPv6 (a dual-stack socket) is the IPv4 address, as peer and as trusted proxy.
        ("::ffff:127.0.0.1", ["203.0.113.5"], PROXIES, "203.0.113.5"),
        ("::ffff:192.0.2.1", [], NONE, "192.0.2.1"),
        ("fd00::1", ["2001:db8::9"], PROXIES, "2001:db8::9"),
        # No peer address (a Unix socket).
        ("", ["203.0.113.5"], PROXIES, "?"),
        (None, [], NONE, "?"),
    ],
)
def test_client_address(peer: str | None, forwarded: list[str], trusted: TrustedProxies, expected: str) -> None:
    assert client_address(peer, forwarded, trusted) == expected


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2::5", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # same /64: one client
        ("2001:db8:1:3::5", "2001:db8:1:3::/64"),  # the next /64: another
        ("::1", "::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("?", "?"),
    ],
)
def test_ipv6_clients_are_counted_by_their_64(address: str, key: str) -> None:
    assert group_key(address) == key
    assert identify(address, (), NONE).key == key


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("203.0.113.5", ClientAddress("203.0.113.5", "203.0.113.5", None)),  # IPv4: the address alone
        ("::ffff:192.0.2.1", ClientAddress("192.0.2.1", "192.0.2.1", None)),
        ("2001:db8:1:2::5", ClientAddress("2001:db8:1:2::5", "2001:db8:1:2::/64", "2001:db8:1::/56")),
        # Another /64 of the same /56: another client, the same subscriber.
        ("2001:db8:1:ff::5", ClientAddress("2001:db8:1:ff::5", "2001:db8:1:ff::/64", "2001:db8:1::/56")),
        ("2001:db8:1:100::5", ClientAddress("2001:db8:1:100::5", "2001:db8:1:100::/64", "2001:db8:1:100::/56")),
        ("?", ClientAddress("?", "?", None)),
    ],
)
def test_an_ipv6_client_is_counted_by_its_64_and_its_56(address: str, expected: ClientAddress) -> None:
    assert identify(address, (), NONE) == expected
    assert network_key(address) == expected.network


@pytest.mark.parametrize(
    ("text", "network"),
    [
        ("10.0.0.5", "10.0.0.5/32"),
        (" 10.0.0.0/8 ", "10.0.0.0/8"),
        ("::1", "::1/128"),
        ("fd00::/8", "fd00::/8"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
    ],
)
def test_trusted_proxy_networks(text: str, network: str) -> None:
    assert str(parse_network(text)) == network


@pytest.mark.parametrize("text", ["", "proxy.example", "10.0.0.5/24", "10.0.0.0/33", "fe80::1%eth0", "10", "*"])
def test_what_is_no_trusted_proxy(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_network(text)
