"""Webhooks for real: a local aiohttp receiver started by the test, a real service process running real jobs.
Then the delivery machinery alone (queue overflow, retries on the fake clock)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from orchestrator.config import NotifySettings, WebhookSettings
from orchestrator.core.clock import FakeClock
from orchestrator.core.events import iso
from orchestrator.ops.delivery import Backoff, DeliveryError, Outbox
from orchestrator.ops.webhook import redact, sign
from tests.fakes import T0, ScriptedJob, Services, minutes, settle
from tests.ops.conftest import Hit
from tests.support import ServiceProcess, free_port, job_command

SECRET = "hook-secret-0123456789"
JOB = job_command(
    "import os, sys\n"
    "print('PROGRESS 50 Halfway', flush=True)\n"
    "sys.exit(3 if 'fail' in os.environ.get('SNAPSHOT_REASON', '') else 0)\n"
)


async def start(service_factory: Callable[..., ServiceProcess], *args: str, **kwargs: Any) -> ServiceProcess:
    """A real service (its first run starts at once), started off the loop so receivers keep answering."""
    return await asyncio.to_thread(service_factory, "--interval", "60", "--command", JOB, *args, **kwargs)


async def trigger(service: ServiceProcess, reason: str) -> None:
    status, _ = await asyncio.to_thread(service.post_json, "/api/snapshot/trigger", {"reason": reason})
    assert status == 202


def verify(hit: Hit, secret: str) -> dict[str, Any]:
    """What a receiver does (README: Notifications): HMAC of the raw body, compared in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), hit.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, hit.headers["X-Snapshot-Signature"])
    document: dict[str, Any] = hit.json()
    assert abs(time.time() - int(hit.headers["X-Snapshot-Timestamp"])) < 60
    return document


@pytest.mark.process
async def test_start_success_and_failure_reach_the_receiver_signed(
    service_factory: Callable[..., ServiceProcess], receivers: Callable[..., Any]
) -> None:
    receiver = await receivers()
    service = await start(service_factory, "--notify-url", receiver.url, env={"SNAPSHOT_NOTIFY_SECRET": SECRET})
    started, succeeded = verify(await receiver.next(), SECRET), verify(await receiver.next(), SECRET)
    assert (started["event"], succeeded["event"]) == ("start", "success")
    assert started["run"]["runId"] == succeeded["run"]["runId"]
    assert started["run"]["status"] == "running" and succeeded["run"]["status"] == "completed"
    assert "pid" not in started["run"] and "pid" not in succeeded["run"]
    assert succeeded["service"] == service.url
    assert succeeded["checks"] == []
    assert started["deliveryId"] != succeeded["deliveryId"]
    await trigger(service, "please fail")
    hits = [await receiver.next(), await receiver.next()]
    failed = verify(hits[1], SECRET)
    assert [h.headers["X-Snapshot-Event"] for h in hits] == ["start", "failure"]
    assert failed["run"]["status"] == "error"
    assert failed["run"]["exitCode"] == 3
    assert failed["run"]["step"] == "Halfway"
    assert failed["run"]["reason"] == "please fail"
    assert hits[1].headers["X-Snapshot-Delivery"] == failed["deliveryId"]
    assert hits[1].headers["Content-Type"] == "application/json"
    assert SECRET not in service.logs()
    with pytest.raises(AssertionError):  # a forged body does not verify
        verify(Hit(hits[1].headers, hits[1].body.replace(b"error", b"completed")), SECRET)


@pytest.mark.process
async def test_a_failing_receiver_is_retried_and_a_refusing_one_is_not(
    service_factory: Callable[..., ServiceProcess], receivers: Callable[..., Any]
) -> None:
    flaky = await receivers(answers=[500, 503])
    refusing = await receivers(answers=[410])
    service = await start(
        service_factory,
        *("--notify-url", flaky.url, "--notify-url", refusing.url),
        *("--notify-on", "success", "--notify-backoff", "0.05"),
    )
    tries = [await flaky.next() for _ in range(3)]
    assert len({hit.headers["X-Snapshot-Delivery"] for hit in tries}) == 1  # the same delivery, tried again
    assert len({hit.body for hit in tries}) == 1
    assert (await refusing.next()).json()["event"] == "success"
    await asyncio.to_thread(service.wait_for_log, "not delivered after 1 try: answered 410")
    await trigger(service, "again")  # the receivers' next hits are the next run's: no stray retries before them
    assert (await flaky.next()).json()["run"]["reason"] == "again"
    assert (await refusing.next()).json()["run"]["reason"] == "again"
    log = service.logs()
    assert log.count("not delivered") == 1  # only the refusing URL's first delivery, one line
    assert "webhook 2 (http://127.0.0.1:" in log


@pytest.mark.process
async def test_an_unreachable_receiver_costs_one_line_and_nothing_else(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    url = f"http://hookuser:hook-password@127.0.0.1:{free_port()}/hook/path-token?token=query-token"
    service = await start(service_factory, "--notify-url", url, "--notify-on", "success", "--notify-backoff", "0.05")
    await asyncio.to_thread(service.wait_for_log, "not delivered after 5 tries")
    last = (await asyncio.to_thread(service.get_json, "/api/snapshot/status"))["lastRun"]
    assert last["status"] == "completed"
    log = service.logs()
    assert log.count("not delivered") == 1
    assert f"of run {last['runId']} not delivered after 5 tries: ClientConnectorError" in log
    for secret in ("hook-password", "path-token", "query-token"):
        assert secret not in log
    assert await asyncio.to_thread(service.stop) == 0


@pytest.mark.process
async def test_stop_gives_a_hanging_receiver_a_short_grace_and_says_what_was_lost(
    service_factory: Callable[..., ServiceProcess], receivers: Callable[..., Any]
) -> None:
    receiver = await receivers(hang=True)
    service = await start(service_factory, "--notify-url", receiver.url)
    await receiver.next()  # the start event is in flight, and the receiver never answers
    await asyncio.to_thread(service.wait_for_log, "completed in")
    began = time.monotonic()
    assert await asyncio.to_thread(service.stop) == 0
    took = time.monotonic() - began
    assert took < 8, took
    assert "stopping; 2 not delivered: start of run" in service.logs()  # the start in flight, the success queued


@pytest.mark.process
async def test_an_answer_that_never_ends_is_not_read_to_its_end(
    service_factory: Callable[..., ServiceProcess], receivers: Callable[..., Any]
) -> None:
    receiver = await receivers(endless=True)
    await start(service_factory, "--notify-url", receiver.url)
    first = await receiver.next()
    # Taken as delivered once its status is in: the next event comes, not the same one again after a timeout.
    second = await receiver.next(timeout=8)
    assert (first.json()["event"], second.json()["event"]) == ("start", "success")


# ----------------------------------------------------------------------------- the machinery, in-process
async def test_the_outbox_retries_with_backoff_on_the_clock_and_drops_the_oldest_when_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(T0)
    answers = [DeliveryError("answered 502", retry=True), DeliveryError("answered 503", retry=True)]
    sent: list[str] = []

    async def send(item: str) -> None:
        if answers:
            raise answers.pop(0)
        sent.append(item)

    outbox = Outbox("test", send, str, clock=clock, backoff=Backoff(tries=5, first=1), size=2)
    outbox.start()
    outbox.put("a")
    await settle()
    assert sent == []  # waiting 1 s (+-20 %) on the clock
    for _ in range(2):
        clock.advance(timedelta(seconds=2.5))  # enough for the 1 s, then the 2 s wait
        await settle()
    assert sent == ["a"]
    with caplog.at_level(logging.WARNING, "orchestrator.ops.delivery"):
        answers.extend(DeliveryError("answered 500", retry=True) for _ in range(5))
        outbox.put("b")
        await settle()  # "b" is in flight, waiting to be tried again
        for item in "cde":
            outbox.put(item)  # room for two: "e" pushes "c" out
        await outbox.stop(grace=1)  # no more waiting: what is left gets one try each
    assert [r.getMessage() for r in caplog.records] == [
        "test: 2 notifications waiting; dropping the oldest (c, and more until it catches up)",
        "test: b not delivered after 1 try (the service is stopping): answered 500",
        "test: d not delivered after 1 try (the service is stopping): answered 500",
        "test: e not delivered after 1 try (the service is stopping): answered 500",
    ]


async def test_an_unforeseen_error_in_one_delivery_loses_that_one_only(caplog: pytest.LogCaptureFixture) -> None:
    # smtplib raises UnicodeEncodeError for a non-ASCII login: uncaught, the sender task would die and every later
    # mail be lost.
    sent: list[str] = []

    async def send(item: str) -> None:
        if item == "odd":
            "pässwörd".encode("ascii")
        sent.append(item)

    outbox = Outbox("test", send, str, clock=FakeClock(T0), backoff=Backoff(tries=5, first=1))
    outbox.start()
    with caplog.at_level(logging.WARNING, "orchestrator.ops.delivery"):
        outbox.put("odd")
        outbox.put("next")
        await settle()
        await outbox.stop(grace=1)
    assert sent == ["next"]
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("test: odd not delivered after 1 try: UnicodeEncodeError: 'ascii' codec"), line


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@hooks.example.com/services/T0/B0/XYZ", "https://hooks.example.com/…"),
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000/"),
        ("http://[::1]:9000/hook?token=t", "http://[::1]:9000/…"),
    ],
)
def test_urls_are_logged_without_credentials_or_path(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_signature_is_the_hmac_of_the_exact_body() -> None:
    body = b'{"event":"start"}'
    assert sign("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


async def test_a_run_running_long_is_told_once_with_its_check(
    receivers: Callable[..., Any], clock: FakeClock, job: ScriptedJob, services: Services
) -> None:
    receiver = await receivers()
    await services.start(
        cooldown=0,
        notify=NotifySettings(webhooks=WebhookSettings(urls=(receiver.url,), events=("long", "success"))),
    )
    for _ in range(5):  # five ten-minute runs make "usual"
        run = await job.next_start()
        clock.advance(minutes(10))
        run.finish()
        assert (await receiver.next()).json()["event"] == "success"
        clock.advance(minutes(20))
    slow = await job.next_start()
    for _ in range(3):  # past 2x the usual, and well past it: told once
        clock.advance(minutes(10) + timedelta(seconds=1))
        await settle()
    told = (await receiver.next()).json()
    assert told["event"] == "long"
    assert told["run"]["runId"] == slow.ctx.run_id and told["run"]["status"] == "running"
    [check] = told["checks"]
    assert check["kind"] == "long" and check["since"] == iso(T0 + minutes(150 + 20))
    slow.finish()
    done = (await receiver.next()).json()  # the next hit is its end: "long" was not sent twice
    assert (done["event"], [c["kind"] for c in done["checks"]]) == ("success", ["long"])
