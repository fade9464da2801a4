"""The status badge: what it says for each state of the status document (a table over the pure function), that
it is well-formed SVG whatever text it carries, and ``GET /badge/{job}.svg`` over real HTTP: its headers, a
404 for another job, and the token rule of the status document."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from orchestrator.core.events import iso
from orchestrator.http.app import create_app
from orchestrator.http.badge import BLUE, GREEN, GREY, RED, Badge, badge_of, badge_svg, render, text_width
from orchestrator.service import Orchestrator
from tests.fakes import T0, Client, ScriptedJob, Services, end_startup

SVG = "{http://www.w3.org/2000/svg}"
TOKEN = "s3cret-Token+/=xyz"


def last(status: str, minutes_ago: float, **more: Any) -> dict[str, Any]:
    return {"status": status, "finishedAt": iso(T0 - timedelta(minutes=minutes_ago)), **more}


def doc(**fields: Any) -> dict[str, Any]:
    return {"running": False, "progress": {"progress": None}, "lastRun": None, "paused": None, **fields}


PAUSED = {"since": iso(T0), "reason": "holiday"}
TABLE = [
    (doc(running=True, progress={"progress": 45}), "running 45 %", BLUE),
    (doc(running=True, progress={"progress": None}), "running", BLUE),
    (doc(running=True, progress={"progress": 0}, lastRun=last("error", 5)), "running 0 %", BLUE),
    (doc(lastRun=last("completed", 0.5)), "completed just now", GREEN),
    (doc(lastRun=last("completed", 5)), "completed 5 min ago", GREEN),
    (doc(lastRun=last("completed", 59.9)), "completed 59 min ago", GREEN),
    (doc(lastRun=last("completed", 60)), "completed 1 h ago", GREEN),
    (doc(lastRun=last("error", 125, error="<script>alert(1)</script>")), "failed 2 h ago", RED),
    (doc(lastRun=last("cancelled", 3 * 24 * 60)), "cancelled 3 d ago", GREY),
    (doc(lastRun=last("completed", -1)), "completed just now", GREEN),  # a clock a little behind
    (doc(lastRun={"status": "completed", "finishedAt": None, "startedAt": iso(T0)}), "completed just now", GREEN),
    (doc(lastRun={"status": "completed"}), "completed", GREEN),
    (doc(), "never run", GREY),
    (doc(paused=PAUSED), "never run · paused", GREY),
    (doc(lastRun=last("error", 10), paused=PAUSED), "failed 10 min ago · paused", RED),
    (doc(running=True, progress={"progress": 12.5}, paused=PAUSED), "running 12.5 % · paused", BLUE),
]


@pytest.mark.parametrize(("status", "value", "colour"), TABLE)
def test_what_the_badge_says(status: dict[str, Any], value: str, colour: str) -> None:
    assert badge_of("snapshot", status, T0) == Badge("snapshot", value, colour)
    svg = ET.fromstring(badge_svg("snapshot", status, T0))
    assert svg.tag == f"{SVG}svg"
    assert svg.findtext(f"{SVG}title") == f"snapshot: {value}"
    assert svg.get("aria-label") == f"snapshot: {value}" and svg.get("role") == "img"
    assert [t.text for t in svg.iter(f"{SVG}text")] == ["snapshot", "snapshot", value, value]
    assert colour in {rect.get("fill") for rect in svg.iter(f"{SVG}rect")}


@pytest.mark.parametrize(
    "hostile",
    ["<script>alert(1)</script>", '"><svg onload=alert(1)>', "a & b ]]> <!-- x", "bell\x07\x00tab\tend", "日本語"],
)
def test_any_text_stays_text(hostile: str) -> None:
    svg_text = render(Badge(hostile, f"failed {hostile}", RED))
    svg = ET.fromstring(svg_text)  # well-formed: parses
    shown = hostile.replace("\x07", "").replace("\x00", "")
    assert svg.findtext(f"{SVG}title") == f"{shown}: failed {shown}"
    assert {element.tag for element in svg.iter()} <= {
        f"{SVG}{tag}" for tag in ("svg", "title", "linearGradient", "stop", "clipPath", "rect", "g", "text")
    }
    assert all(not name.lower().startswith("on") for element in svg.iter() for name in element.attrib)
    assert "<script" not in svg_text and "<style" not in svg_text


def test_the_width_follows_the_text() -> None:
    short = ET.fromstring(render(Badge("snapshot", "never run", GREY)))
    long = ET.fromstring(render(Badge("snapshot", "completed 59 min ago · paused", GREEN)))
    assert int(long.get("width", "0")) - int(short.get("width", "0")) == pytest.approx(
        text_width("completed 59 min ago · paused") - text_width("never run"), abs=2
    )
    assert text_width("mmm") > text_width("iii")


# ------------------------------------------------------------------------------------------------ HTTP
@pytest.fixture
async def serve(
    services: Services, aiohttp_client: Callable[[aiohttp.web.Application], Awaitable[Client]]
) -> Callable[..., Awaitable[Client]]:
    async def start(**overrides: Any) -> Client:
        job = ScriptedJob()
        orchestrator: Orchestrator = services.build(job=job, **overrides)
        client = await aiohttp_client(create_app(orchestrator))
        await end_startup(orchestrator, job)
        return client

    return start


async def test_the_badge_route(serve: Callable[..., Awaitable[Client]]) -> None:
    client = await serve()
    response = await client.get("/badge/snapshot.svg")
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    svg = ET.fromstring(await response.text())
    assert svg.findtext(f"{SVG}title") == "snapshot: completed just now"
    for path in ("/badge/other.svg", "/badge/%3Cscript%3E.svg"):
        missing = await client.get(path)
        assert missing.status == 404
        body = await missing.json()
        assert body["success"] is False and "no job named" in body["message"]
    assert (await client.get("/badge/snapshot.png")).status == 404


async def test_the_badge_is_open_where_the_status_is(serve: Callable[..., Awaitable[Client]]) -> None:
    client = await serve(token=TOKEN)
    assert (await client.get("/badge/snapshot.svg")).status == 200


async def test_the_badge_needs_the_token_under_token_for_reads(serve: Callable[..., Awaitable[Client]]) -> None:
    client = await serve(token=TOKEN, token_for_reads=True)
    refused = await client.get("/badge/snapshot.svg")
    assert refused.status == 401 and refused.headers["Content-Type"].startswith("application/json")
    allowed = await client.get("/badge/snapshot.svg", headers={"Authorization": f"Bearer {TOKEN}"})
    assert allowed.status == 200
    ticket = (await (await client.post("/api/stream-ticket", headers={"Authorization": f"Bearer {TOKEN}"})).json())[
        "ticket"
    ]
    assert (await client.get("/badge/snapshot.svg", params={"ticket": ticket})).status == 200
