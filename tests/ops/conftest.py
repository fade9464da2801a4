"""What the notification tests share: webhook receivers on loopback ports."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.support import free_port


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver: records every POST; answers with ``answers`` in turn (then 200), or never
    (``hang``)."""

    answers: list[int] = field(default_factory=list)
    hang: bool = False
    endless: bool = False
    """Answer 200 with a body that never ends."""
    hits: asyncio.Queue[Hit] = field(default_factory=asyncio.Queue)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.put_nowait(Hit(dict(request.headers), await request.read()))
        if self.hang:
            await asyncio.Event().wait()
        if self.endless:
            answer = web.StreamResponse()
            await answer.prepare(request)
            while True:  # until the service lets go of the connection
                await answer.write(b"x" * 65536)
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    async def next(self, timeout: float = 15) -> Hit:
        async with asyncio.timeout(timeout):
            return await self.hits.get()


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Any]]:
    runners: list[web.AppRunner] = []

    async def make(**kwargs: Any) -> Receiver:
        receiver = Receiver(**kwargs)
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        receiver.url = f"http://127.0.0.1:{port}/hook"
        return receiver

    yield make
    for runner in runners:
        await runner.cleanup()
