"""What a request's Host names (orchestrator/http/hostheader.py), as a table."""

from __future__ import annotations

import pytest

from orchestrator.http.hostheader import Addressed, parse_host


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:8001", Addressed("localhost", 8001)),
        ("localhost", Addressed("localhost", None)),
        ("localhost:", Addressed("localhost", None)),
        ("Snap.Example.", Addressed("snap.example", None)),
        ("SNAP.example.:443", Addressed("snap.example", 443)),
        ("127.0.0.1:8001", Addressed("127.0.0.1", 8001)),
        ("[::1]:8001", Addressed("::1", 8001)),
        ("[2001:DB8::7]", Addressed("2001:db8::7", None)),
        ("under_score.internal:1", Addressed("under_score.internal", 1)),
        ("localhost:65535", Addressed("localhost", 65535)),
        # What aiohttp's request.url raises on (a 500 with a traceback), or what no browser sends.
        ("localhost:99999", None),
        ("localhost:65536", None),
        ("localhost:0", None),
        ("localhost:abc", None),
        ("localhost:+80", None),
        ("localhost:\uff18\uff10", None),  # full-width digits: isdigit() says yes
        ("ev\xefl.example", None),
        ("évil.example", None),
        ("", None),
        ("a b", None),
        ("evil\x00.example", None),
        ("[::1", None),
        ("[::1]x", None),
        ("[not-v6]:80", None),
        ("::1", None),
        ("::1:8001", None),
        ("user@localhost", None),
        ("-leading.example", None),
        ("localhost:80:80", None),
        ("x" * 300, None),
    ],
)
def test_parse_host(text: str, expected: Addressed | None) -> None:
    assert parse_host(text) == expected


def test_the_port_a_browser_left_out_is_the_schemes() -> None:
    assert Addressed("snap.example", None).port_or(443) == 443
    assert Addressed("snap.example", 8443).port_or(443) == 8443
