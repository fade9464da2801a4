"""Double-click safety: the key store's logic on a fake clock, then the trigger route of a real service."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import requests

from orchestrator.core.clock import FakeClock
from orchestrator.http.idempotency import Answer, IdempotencyStore, InvalidKey, KeyReused, check_key
from tests.fakes import T0, minutes
from tests.support import ServiceProcess, next_status, sse_stream, start_service

OK = Answer(202, b'{"success": true}', "application/json; charset=utf-8")


# ---------------------------------------------------------------------------------------- the key
@pytest.mark.parametrize("key", ["a", "x" * 200, "3f1c9a52-6a8e-4b0e-9f57-2b8c1d6e7a40", "with space ~!"])
def test_good_keys(key: str) -> None:
    assert check_key([key]) == key


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ([""], "it is empty"),
        (["x" * 201], "it has 201"),
        (["caf\u00e9"], "other characters"),
        (["tab\there"], "other characters"),
        (["a", "b"], "sent 2 times"),
    ],
)
def test_bad_keys(values: list[str], problem: str) -> None:
    with pytest.raises(InvalidKey, match=problem):
        check_key(values)


def test_no_header_is_no_key() -> None:
    assert check_key([]) is None


# ------------------------------------------------------------------------------------- the store
class Counting:
    """A handler the test can hold open (``release``) and that counts its calls."""

    def __init__(self, answer: Answer = OK) -> None:
        self.calls = 0
        self.answer = answer
        self.release = asyncio.Event()
        self.release.set()
        self.entered = asyncio.Event()

    async def __call__(self) -> Answer:
        self.calls += 1
        self.entered.set()
        await self.release.wait()
        return self.answer


async def test_the_same_key_replays_the_first_answer_within_the_window() -> None:
    clock = FakeClock(T0)
    store = IdempotencyStore(clock)
    handle = Counting()
    assert await store.once("k", b"req", handle) == (OK, False)
    clock.advance(minutes(59))
    assert await store.once("k", b"req", handle) == (OK, True)
    assert handle.calls == 1
    assert await store.once("other", b"req", handle) == (OK, False)
    assert handle.calls == 2
    clock.advance(minutes(1))  # the first key's hour is up
    assert await store.once("k", b"req", handle) == (OK, False)
    assert handle.calls == 3


async def test_the_window_is_on_the_monotonic_clock() -> None:
    clock = FakeClock(T0)
    store = IdempotencyStore(clock)
    handle = Counting()
    await store.once("k", b"req", handle)
    clock.step_wall_clock(minutes(120))  # the wall clock is set forward; no time passed
    assert await store.once("k", b"req", handle) == (OK, True)


async def test_a_key_reused_for_another_request_is_refused() -> None:
    store = IdempotencyStore(FakeClock(T0))
    handle = Counting()
    await store.once("k", b"reason a", handle)
    with pytest.raises(KeyReused):
        await store.once("k", b"reason b", handle)
    assert handle.calls == 1


async def test_only_successful_answers_are_kept() -> None:
    store = IdempotencyStore(FakeClock(T0))
    refused = Counting(Answer(400, b"{}", "application/json"))
    assert (await store.once("k", b"req", refused))[1] is False
    assert (await store.once("k", b"req", refused))[1] is False
    assert refused.calls == 2
    assert len(store) == 0


async def test_the_store_is_bounded_and_forgets_the_oldest() -> None:
    store = IdempotencyStore(FakeClock(T0), max_keys=3)
    handle = Counting()
    for key in "abcd":
        await store.once(key, b"req", handle)
    assert len(store) == 3
    assert (await store.once("d", b"req", handle))[1] is True
    assert (await store.once("a", b"req", handle))[1] is False, "the oldest was forgotten"


async def test_two_requests_at_the_same_instant_run_once() -> None:
    store = IdempotencyStore(FakeClock(T0))
    handle = Counting()
    handle.release.clear()
    first = asyncio.create_task(store.once("k", b"req", handle))
    await asyncio.wait_for(handle.entered.wait(), 5)
    second = asyncio.create_task(store.once("k", b"req", handle))
    await asyncio.sleep(0)  # let the second reach its wait (a turn of the loop, not a wait for time)
    assert not second.done()
    handle.release.set()
    assert await asyncio.wait_for(first, 5) == (OK, False)
    assert await asyncio.wait_for(second, 5) == (OK, True)
    assert handle.calls == 1


async def test_a_waiter_goes_on_alone_when_the_first_fails() -> None:
    store = IdempotencyStore(FakeClock(T0))
    failing = Counting()
    failing.release.clear()
    first = asyncio.create_task(store.once("k", b"req", failing))
    await asyncio.wait_for(failing.entered.wait(), 5)
    second_handle = Counting()
    second = asyncio.create_task(store.once("k", b"req", second_handle))
    await asyncio.sleep(0)
    first.cancel()  # the first client left before its answer
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 5) == (OK, False)
    assert second_handle.calls == 1


# ------------------------------------------------------------------------------- a real service
@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A service whose start-up run lasts (``sleep``): every trigger then waits as the follow-up, and
    ``pendingTriggers`` counts the ones taken."""
    root = tmp_path_factory.mktemp("idem")
    service = start_service(
        root, "--command", "sleep 60", "--interval", "600", "--kill-grace", "1", "--trigger-limit", "0"
    )
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


async def running(service: ServiceProcess) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        return await next_status(sse_stream(session, service.url + "/api/snapshot/events"), lambda d: d["running"])


def wait_running(service: ServiceProcess) -> None:
    asyncio.run(running(service))


def trigger(service: ServiceProcess, key: str | None, body: Any = None) -> requests.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return requests.post(service.url + "/api/snapshot/trigger", json=body, headers=headers, timeout=10)


def pending(service: ServiceProcess) -> int:
    count: int = service.get_json("/api/snapshot/status")["pendingTriggers"]
    return count


@pytest.mark.process
def test_a_repeated_key_gets_the_first_answer_and_starts_nothing(busy: ServiceProcess) -> None:
    wait_running(busy)
    before = pending(busy)
    first = trigger(busy, "click-1", {"reason": "double click"})
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    busy.wait_for_log("HTTP trigger from 127.0.0.1 (reason: double click)")  # the key check keeps the body
    again = trigger(busy, "click-1", {"reason": "double click"})
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content  # same body, byte for byte (requestedAt included)
    assert again.headers["Content-Type"] == first.headers["Content-Type"]
    assert pending(busy) == before + 1
    busy.wait_for_log("same Idempotency-Key as before, answer replayed")

    other = trigger(busy, "click-2", {"reason": "double click"})
    assert "Idempotent-Replayed" not in other.headers
    assert pending(busy) == before + 2, "another key is another request"
    reused = trigger(busy, "click-1", {"reason": "something else"})
    assert reused.status_code == 409
    assert "used for a different request" in reused.json()["message"]
    assert pending(busy) == before + 2


@pytest.mark.process
@pytest.mark.parametrize("key", ["", "x" * 201, "caf\u00e9"])
def test_bad_keys_get_400_and_start_nothing(busy: ServiceProcess, key: str) -> None:
    wait_running(busy)
    before = pending(busy)
    answer = requests.post(
        busy.url + "/api/snapshot/trigger",
        headers={"Idempotency-Key": key.encode("utf-8")},  # type: ignore[dict-item]
        timeout=10,
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["success"] is False and "Idempotency-Key" in answer.json()["message"]
    assert pending(busy) == before


@pytest.mark.process
async def test_two_same_key_triggers_in_flight_together_take_one(busy: ServiceProcess) -> None:
    """Both requests are inside the service, waiting for their bodies, when the later one's body arrives
    and it is answered: a check of the key made before that wait and acted on after it would take both.
    (``Expect: 100-continue``: the service says "go on" once it has taken the request in.)"""
    await running(busy)
    before = await asyncio.to_thread(pending, busy)
    body = b'{"reason": "same instant"}'
    head = (
        "POST /api/snapshot/trigger HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{busy.port}\r\n"
        "Content-Type: application/json\r\n"
        "Idempotency-Key: same-instant\r\n"
        "Expect: 100-continue\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    first, second = [await asyncio.open_connection("127.0.0.1", busy.port) for _ in range(2)]
    for reader, writer in (first, second):
        writer.write(head)
        await writer.drain()
        go_on = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert go_on.startswith(b"HTTP/1.1 100 Continue"), go_on
    answers = {}
    for name, (reader, writer) in (("second", second), ("first", first)):  # the later request's body first
        writer.write(body)
        await writer.drain()
        answers[name] = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert all(answer.startswith(b"HTTP/1.1 202 Accepted") for answer in answers.values()), answers
    assert b"Idempotent-Replayed: true" not in answers["second"]
    assert b"Idempotent-Replayed: true" in answers["first"]
    assert answers["first"].split(b"\r\n\r\n", 1)[1] == answers["second"].split(b"\r\n\r\n", 1)[1]
    assert await asyncio.to_thread(pending, busy) == before + 1
