"""One encoding of each event for every stream, and one ping timer for all (orchestrator/http/fanout.py): the
bytes are aiohttp-sse's own, each change is framed once and the same bytes reach every stream, and nothing
runs for streams that are not there. Fakes at the seam: a hub behind a status view, listeners that record."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp_sse import EventSourceResponse

from orchestrator.http.fanout import PING, Fanout, Fanouts, Frame, Pinger, frame
from orchestrator.live.hub import Hub


class Capture(EventSourceResponse):
    """aiohttp-sse's response, keeping what ``send`` writes instead of writing it."""

    def __init__(self) -> None:
        super().__init__(send_timeout=None)
        self.sent = b""

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += bytes(data)


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ('{"status": "idle"}', {"event": "status", "id": "1765112345000", "retry": 2000}),
        ("two\nlines\r\nand\ra carriage return", {"event": "log", "id": "42"}),
        ("", {}),
        ("ünïcode ✓", {"event": "end", "id": "end"}),
    ],
)
async def test_an_event_is_framed_as_aiohttp_sse_sends_it(data: str, fields: dict[str, Any]) -> None:
    capture = Capture()
    await capture.send(data, **fields)
    framed = frame(data, event=fields.get("event"), event_id=fields.get("id"), retry=fields.get("retry"))
    assert framed.plain == capture.sent
    assert framed.chunked == f"{len(capture.sent):x}\r\n".encode() + capture.sent + b"\r\n"  # as aiohttp chunks it
    assert PING.plain == b": ping\r\n\r\n"


@pytest.mark.parametrize("event_id", ["a\nb", "a\rb", "a\0b"])
def test_an_id_that_would_break_the_framing_is_refused(event_id: str) -> None:
    with pytest.raises(ValueError, match="id must not"):
        frame("x", event="status", event_id=event_id)


class View:
    """A job's status view over a real hub; ``status_event`` encodes each version once, as the publisher does
    (orchestrator/live/status.py), and counts the calls."""

    def __init__(self) -> None:
        self.hub = Hub()
        self.encodings = 0
        self._encoded: dict[int, str] = {}

    def latest(self) -> tuple[int, dict[str, Any]]:
        return self.hub.latest()

    async def next_after(self, version: int) -> tuple[int, dict[str, Any]]:
        return await self.hub.next_after(version)

    def status_event(self, version: int, document: dict[str, Any]) -> str:
        self.encodings += 1
        return self._encoded.setdefault(version, f'{{"version": {version}, "seq": {document.get("seq")}}}')


class Listener:
    def __init__(self) -> None:
        self.version = -1
        self.frames: list[tuple[Frame, int]] = []
        self.pings = 0
        self.ended = False
        self.arrived = asyncio.Event()

    def deliver(self, framed: Frame, version: int = -1) -> None:
        self.frames.append((framed, version))
        self.version = max(self.version, version)
        self.arrived.set()

    def ping(self) -> None:
        self.pings += 1
        self.arrived.set()

    def end(self) -> None:
        self.ended = True
        self.arrived.set()


async def arrival(listener: Listener) -> None:
    async with asyncio.timeout(5):
        await listener.arrived.wait()
    listener.arrived.clear()


async def test_each_change_is_framed_once_and_the_same_bytes_reach_every_stream() -> None:
    view = View()
    view.hub.publish({"seq": 0})
    fanouts = Fanouts()
    fanout = fanouts.of(view)  # type: ignore[arg-type]
    listeners = [Listener() for _ in range(50)]
    for listener in listeners:
        fanout.join(listener, None)
    assert len({id(listener.frames[0][0]) for listener in listeners}) == 1, "one frame of the state on connect"
    encodings = view.encodings
    listeners[-1].arrived.clear()
    view.hub.publish({"seq": 1})
    await arrival(listeners[-1])
    latest = listeners[0].frames[-1][0]
    assert all(listener.frames[-1] == (latest, view.hub.version) for listener in listeners)
    assert all(listener.frames[-1][0] is latest for listener in listeners), "the very same bytes, not copies"
    assert view.encodings == encodings + 1
    assert b'"seq": 1' in latest.plain and f"id: {view.hub.version}\r\n".encode() in latest.plain

    for listener in listeners:
        fanout.leave(listener)
    assert fanouts.all() == (), "no stream: nothing follows the hub"


async def test_a_stream_resuming_at_the_latest_version_gets_nothing_until_the_next_change() -> None:
    view = View()
    fanout = Fanout(view, lambda _: None)  # type: ignore[arg-type]
    resumed, fresh = Listener(), Listener()
    fanout.join(resumed, str(view.hub.version))
    fanout.join(fresh, "1")
    assert (resumed.frames, len(fresh.frames)) == ([], 1)
    view.hub.publish({"seq": 1})
    await arrival(resumed)
    assert [version for _, version in resumed.frames] == [view.hub.version]
    fanout.leave(resumed)
    fanout.leave(fresh)


async def test_a_closed_hub_ends_every_stream() -> None:
    view = View()
    fanout = Fanout(view, lambda _: None)  # type: ignore[arg-type]
    listener = Listener()
    fanout.join(listener, None)
    listener.arrived.clear()
    view.hub.close()
    await arrival(listener)
    assert listener.ended


async def test_one_timer_pings_every_stream_and_none_runs_without_streams() -> None:
    pinger = Pinger(0.01)
    listeners = [Listener() for _ in range(3)]
    for listener in listeners:
        pinger.add(listener)
    for listener in listeners:
        await arrival(listener)
    assert all(listener.pings >= 1 for listener in listeners)
    for listener in listeners:
        pinger.discard(listener)
    assert pinger._timer is None, "an idle service wakes for nothing"
