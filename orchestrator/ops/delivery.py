"""Delivery to one destination (a webhook URL, the SMTP server): a bounded queue, one sender task, retries with
exponential backoff on the injected clock. A destination that is down delays only its own queue, never the
scheduler nor the other destinations; what it cannot take is logged, one line per notification given up."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from orchestrator.core.clock import Clock
from orchestrator.core.streak import Streak

log = logging.getLogger(__name__)

T = TypeVar("T")

QUEUE_SIZE = 100
"""Notifications waiting per destination; a run makes at most three, so this is a day of a dead receiver."""
MAX_DELAY = 60.0


class DeliveryError(Exception):
    """One try failed; ``retry``: whether trying again may help (a 5xx, a timeout; not a 4xx)."""

    def __init__(self, reason: str, *, retry: bool, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.after = after
        """The receiver asked for this many seconds before the next try (``Retry-After``)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """``tries`` in all; the wait before try n+1 is ``first`` x 2^(n-1), ±20 % jitter (so receivers that
    come back are not hit by every sender at once), at most :data:`MAX_DELAY`."""

    tries: int = 5
    first: float = 1.0

    def delay(self, failed_tries: int, asked: float | None = None) -> float:
        base = min(MAX_DELAY, self.first * 2.0 ** (failed_tries - 1))
        if asked is not None:
            base = max(base, min(MAX_DELAY, asked))
        return base * random.uniform(0.8, 1.2)  # jitter, not a secret: random is fine


class Outbox(Generic[T]):
    """One destination. ``send`` makes one try and raises :class:`DeliveryError` if it failed; ``describe``
    names an item in log lines (never with a secret in it)."""

    def __init__(
        self,
        name: str,
        send: Callable[[T], Awaitable[None]],
        describe: Callable[[T], str],
        *,
        clock: Clock,
        backoff: Backoff,
        size: int = QUEUE_SIZE,
    ) -> None:
        self.name = name
        self._send = send
        self._describe = describe
        self._clock = clock
        self._backoff = backoff
        self._queue: collections.deque[T] = collections.deque()
        self._size = size
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        """Set on stop: no more waiting between tries; what is queued gets one try each, within the grace."""
        self._in_flight: T | None = None
        self._dropping = Streak()
        """A full queue dropping its oldest: one line per overflow streak, which ends when the queue is empty."""
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name=f"outbox {self.name}")

    def put(self, item: T) -> None:
        """Queue ``item``; returns at once. A full queue drops its oldest item (one line per overflow streak)."""
        if self._closing.is_set():
            log.warning("%s: the service is stopping; %s not sent", self.name, self._describe(item))
            return
        if len(self._queue) >= self._size:
            dropped = self._queue.popleft()
            if self._dropping.failed():
                log.warning(
                    "%s: %d notifications waiting; dropping the oldest (%s, and more until it catches up)",
                    self.name,
                    self._size,
                    self._describe(dropped),
                )
        self._queue.append(item)
        self._wake.set()

    async def stop(self, grace: float) -> None:
        """Let the sender finish what it is doing for up to ``grace`` seconds, then cancel it; what was not
        delivered is logged in one line."""
        self._closing.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=grace)
            if not done:
                task.cancel()
                await asyncio.wait({task})
        lost = ([] if self._in_flight is None else [self._in_flight]) + list(self._queue)
        self._queue.clear()
        self._in_flight = None
        if lost:
            log.warning(
                "%s: stopping; %d not delivered: %s",
                self.name,
                len(lost),
                ", ".join(self._describe(item) for item in lost),
            )

    @property
    def waiting(self) -> int:
        return len(self._queue) + (self._in_flight is not None)

    async def _serve(self) -> None:
        while True:
            while not self._queue:
                self._dropping.recovered()
                if self._closing.is_set():
                    return
                self._wake.clear()
                await self._wake.wait()
            self._in_flight = self._queue.popleft()
            await self._deliver(self._in_flight)
            self._in_flight = None

    async def _deliver(self, item: T) -> None:
        tries = self._backoff.tries
        for attempt in range(1, tries + 1):
            try:
                await self._send(item)
            except DeliveryError as exc:
                error = exc
            except Exception as exc:  # unforeseen (a bug, smtplib on odd input): this one is lost, not the sender
                error = DeliveryError(f"{type(exc).__name__}: {exc}", retry=False)
            else:
                self.delivered += 1
                log.debug("%s: %s delivered (try %d)", self.name, self._describe(item), attempt)
                return
            if not error.retry or attempt == tries or self._closing.is_set():
                break
            delay = self._backoff.delay(attempt, error.after)
            log.debug(
                "%s: %s: try %d of %d failed (%s); again in %.1f s",
                self.name,
                self._describe(item),
                attempt,
                tries,
                error.reason,
                delay,
            )
            if await self._clock.wait(self._closing, self._clock.now() + timedelta(seconds=delay)):
                break  # stopping: no more waiting
        stopping = " (the service is stopping)" if self._closing.is_set() and error.retry else ""
        log.warning(
            "%s: %s not delivered after %d %s%s: %s",
            self.name,
            self._describe(item),
            attempt,
            "try" if attempt == 1 else "tries",
            stopping,
            error.reason,
        )
