"""Double-click safety: an ``Idempotency-Key`` request header makes a repeated request harmless.

The first request with a key runs and its answer is kept for :data:`WINDOW`; the same key again within that
window gets the kept answer (same status, same body) with ``Idempotent-Replayed: true``, and nothing runs.
The same key on a different request (another body, path or method) is a client's mistake that would lose
that request silently: it gets ``409`` instead, and nothing runs either. A request that arrives while the
first with its key is still being handled waits for that one's answer: two clicks at the same instant start
one run. Only successful answers (2xx) are kept: a request refused for its body can be sent again,
corrected, with the same key. The keys live in memory only (a restart forgets them; a replay is for the
seconds a client takes to retry, not for days), at most :data:`MAX_KEYS` of them, the oldest forgotten first.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web

from orchestrator.core.clock import Clock
from orchestrator.http.clientaddr import client_of
from orchestrator.http.errors import Handler, json_error

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_CHARS = 200
WINDOW = timedelta(hours=1)
MAX_KEYS = 10_000


class KeyReused(ValueError):
    """The key was first used for a different request."""

    def __init__(self) -> None:
        super().__init__(f"this {HEADER} was used for a different request (another body); use a new key")


class InvalidKey(ValueError):
    """An ``Idempotency-Key`` that is not 1 to :data:`MAX_KEY_CHARS` printable ASCII characters."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{HEADER} must be 1 to {MAX_KEY_CHARS} printable ASCII characters: {problem}")


def check_key(values: list[str]) -> str | None:
    """The key from the header's values (``None``: no header); :class:`InvalidKey` if it is not one."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidKey(f"the header was sent {len(values)} times")
    key = values[0]
    if not key:
        raise InvalidKey("it is empty")
    if len(key) > MAX_KEY_CHARS:
        raise InvalidKey(f"it has {len(key)}")
    if not all(" " <= ch <= "~" for ch in key):
        raise InvalidKey("it has other characters")
    return key


@dataclass(frozen=True, slots=True)
class Answer:
    """A kept answer: what is sent again, byte for byte."""

    status: int
    body: bytes
    content_type: str
    """The whole ``Content-Type`` header, charset included."""


@dataclass(frozen=True, slots=True)
class _Kept:
    fingerprint: bytes
    answer: Answer
    until: float
    """On the clock's monotonic scale: a wall-clock step neither ends the window early nor stretches it."""


class IdempotencyStore:
    """Answers by key for :data:`WINDOW`, bounded to ``max_keys``; one per app."""

    def __init__(self, clock: Clock, *, window: timedelta = WINDOW, max_keys: int = MAX_KEYS) -> None:
        self._clock = clock
        self._window = window.total_seconds()
        self._max_keys = max_keys
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        """Oldest first: keys are only ever added at the end, with the same window each."""
        self._in_flight: dict[str, tuple[bytes, asyncio.Future[Answer]]] = {}

    def __len__(self) -> int:
        return len(self._kept)

    async def once(self, key: str, fingerprint: bytes, handle: Callable[[], Awaitable[Answer]]) -> tuple[Answer, bool]:
        """``handle()``'s answer and ``False``, or the answer kept for ``key`` and ``True`` (replayed);
        :class:`KeyReused` if ``key`` was first used for a request with another ``fingerprint``.

        The check and the claim of the key happen with no ``await`` between them, so of two requests with
        the same key exactly one runs ``handle``; the other waits for its answer. If that one ends without a
        kept answer (an error, a client gone), the waiter goes on as if it were the first."""
        while True:
            self._forget_expired()
            kept = self._kept.get(key)
            if kept is not None:
                if kept.fingerprint != fingerprint:
                    raise KeyReused
                return kept.answer, True
            if key not in self._in_flight:
                break
            first_print, first = self._in_flight[key]
            if first_print != fingerprint:
                raise KeyReused
            await asyncio.wait({first})  # never raises for ``first``'s outcome; our own cancel goes through
            if not first.cancelled():
                return first.result(), True
        mine: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = (fingerprint, mine)
        try:
            answer = await handle()
        except BaseException:
            mine.cancel()
            raise
        finally:
            del self._in_flight[key]
        if 200 <= answer.status < 300:
            self._keep(key, fingerprint, answer)
            mine.set_result(answer)
        else:
            mine.cancel()
        return answer, False

    def _keep(self, key: str, fingerprint: bytes, answer: Answer) -> None:
        while len(self._kept) >= self._max_keys:
            self._kept.popitem(last=False)
        self._kept[key] = _Kept(fingerprint, answer, self._clock.monotonic() + self._window)

    def _forget_expired(self) -> None:
        now = self._clock.monotonic()
        while self._kept:
            oldest = next(iter(self._kept.values()))
            if oldest.until > now:
                break
            self._kept.popitem(last=False)


STORE = web.AppKey("idempotency", IdempotencyStore)


def install(app: web.Application, clock: Clock) -> None:
    app[STORE] = IdempotencyStore(clock)


def once(handler: Handler) -> Handler:
    """``handler`` made safe to repeat with an ``Idempotency-Key`` (see the module's docstring)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            key = check_key(request.headers.getall(HEADER, []))
        except InvalidKey as exc:
            return json_error(400, str(exc))
        if key is None:
            return await handler(request)
        # The request, as far as a retry must repeat it. Reading the body here (aiohttp keeps it for the
        # handler) is the only wait before the key is claimed: the claim itself is atomic (see ``once``).
        body = await request.read()
        fingerprint = hashlib.sha256(b"%s %s\n%s" % (request.method.encode(), request.path.encode(), body)).digest()
        response: web.StreamResponse | None = None

        async def first() -> Answer:
            nonlocal response
            response = await handler(request)
            if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
                raise TypeError(f"only whole answers can be sent again, not {response!r}")  # a bug of ours
            return Answer(response.status, response.body, response.headers.get("Content-Type", "application/json"))

        try:
            answer, replayed = await request.app[STORE].once(key, fingerprint, first)
        except KeyReused as exc:
            return json_error(409, str(exc))
        if not replayed and response is not None:
            return response
        log.info(
            "%s %s from %s: same %s as before, answer replayed",
            request.method,
            request.path,
            client_of(request).address,
            HEADER,
        )
        headers = {"Content-Type": answer.content_type, REPLAYED_HEADER: "true"}
        return web.Response(body=answer.body, status=answer.status, headers=headers)

    return handle
