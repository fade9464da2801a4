"""Webhooks: each notification as a JSON POST to every ``--notify-url``, optionally signed with HMAC-SHA256.

Every URL has its own :class:`~orchestrator.ops.delivery.Outbox` (queue, sender task, retries), so a dead receiver
delays only itself. A URL is never logged whole: it may carry credentials (``user:pass@``) or a token in its
path (as chat webhooks do), so log lines name it by its position and origin only (``webhook 1 (https://h/…)``),
and the job whose notification it is when that is not the default (``job report: webhook 1 (https://h/…)``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from orchestrator import __version__
from orchestrator.core.clock import Clock
from orchestrator.core.records import DEFAULT_JOB
from orchestrator.ops.delivery import Backoff, DeliveryError, Outbox

log = logging.getLogger(__name__)

ANSWER_READ_BYTES = 64 * 1024

TIMEOUT_SECONDS = 10.0
"""One try: a receiver that takes longer is treated as down (and tried again)."""
SIGNATURE_HEADER = "X-Snapshot-Signature"
TIMESTAMP_HEADER = "X-Snapshot-Timestamp"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification, serialized (and signed) once: every try and every URL sends the same bytes."""

    event: str
    run_id: str
    delivery_id: str
    sent_at: int
    """Unix seconds when it was made; also in the (signed) body as ``sentAt``."""
    body: bytes
    signature: str | None

    def describe(self) -> str:
        return f"{self.event} of run {self.run_id}"


def sign(secret: str, body: bytes) -> str:
    """The ``X-Snapshot-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def redact(url: str) -> str:
    """``https://hooks.example.com/…``: scheme, host and port only; no credentials, path or query."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else "/"
    return f"{parts.scheme}://{host}{port}{rest}"


class Webhooks:
    """One job's webhooks (``job``: its name, said in log lines unless it is :data:`DEFAULT_JOB`)."""

    def __init__(
        self, urls: tuple[str, ...], *, secret: str | None, clock: Clock, backoff: Backoff, job: str = DEFAULT_JOB
    ) -> None:
        self._urls = urls
        self._secret = secret
        self._session: aiohttp.ClientSession | None = None
        whose = "" if job == DEFAULT_JOB else f"job {job}: "
        self.outboxes = [
            Outbox(
                f"{whose}webhook {n} ({redact(url)})",
                self._poster(url),
                Delivery.describe,
                clock=clock,
                backoff=backoff,
            )
            for n, url in enumerate(urls, 1)
        ]

    def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
            headers={"User-Agent": f"snapshot-orchestrator/{__version__}"},
        )
        for outbox in self.outboxes:
            outbox.start()

    def send(self, event: str, run_id: str, document: dict[str, Any], *, delivery_id: str, sent_at: int) -> None:
        """Queue ``document`` for every URL; returns at once."""
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        delivery = Delivery(
            event=event,
            run_id=run_id,
            delivery_id=delivery_id,
            sent_at=sent_at,
            body=body,
            signature=sign(self._secret, body) if self._secret else None,
        )
        for outbox in self.outboxes:
            outbox.put(delivery)

    async def stop(self, grace: float) -> None:
        await asyncio.gather(*(outbox.stop(grace) for outbox in self.outboxes))
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _poster(self, url: str) -> Callable[[Delivery], Awaitable[None]]:
        async def post(delivery: Delivery) -> None:
            assert self._session is not None, "start() first"
            headers = {
                "Content-Type": "application/json",
                "X-Snapshot-Event": delivery.event,
                "X-Snapshot-Delivery": delivery.delivery_id,
            }
            if delivery.signature is not None:
                headers[SIGNATURE_HEADER] = delivery.signature
                headers[TIMESTAMP_HEADER] = str(delivery.sent_at)
            try:
                # No redirects: a 3xx to elsewhere would turn the POST into a GET without its body.
                async with self._session.post(
                    url, data=delivery.body, headers=headers, allow_redirects=False
                ) as answer:
                    status = answer.status
                    retry_after = answer.headers.get("Retry-After")
                    # Only the start of the answer (nothing in it is used): the connection is released
                    # either way, and a URL that streams gigabytes costs no memory.
                    await answer.content.read(ANSWER_READ_BYTES)
            except TimeoutError:
                raise DeliveryError(f"no answer within {TIMEOUT_SECONDS:g} s", retry=True) from None
            except aiohttp.ClientError as exc:
                raise DeliveryError(_reason(exc, url), retry=True) from None
            if 200 <= status < 300:
                return
            # 5xx, 408 and 429 may pass; any other answer (400, 401, 404, a redirect) will be the same next time.
            retry = status >= 500 or status in (408, 429)
            raise DeliveryError(f"answered {status}", retry=retry, after=_seconds(retry_after))

        return post


def _reason(exc: Exception, url: str) -> str:
    """The error in one line, with the URL (and so any credentials in it) replaced by its redacted form."""
    text = f"{type(exc).__name__}: {exc}".replace(url, redact(url))
    password = urlsplit(url).password
    if password:
        text = text.replace(password, "***")
    return " ".join(text.split())


def _seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is rare for webhooks and is ignored)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
