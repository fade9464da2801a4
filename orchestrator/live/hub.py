"""Fan-out of the status document to any number of listeners (the SSE streams).

It keeps only the latest document and its version, never a queue per listener: each listener waits for a
version newer than the one it last sent and then sends whatever is newest. A slow listener therefore skips
intermediate states (each event is a whole state, so nothing is lost) and costs no memory while it lags.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any


class HubClosed(Exception):
    """The service is shutting down; listeners should end their streams."""


class Hub:
    def __init__(self) -> None:
        # Versions start from the wall clock in milliseconds so that event ids keep growing across restarts:
        # a client resuming with an id from an earlier run of the service is never mistaken for up to date.
        self._version = int(time.time() * 1000)
        self._document: dict[str, Any] = {}
        self._changed = asyncio.Event()
        self._closed = False

    @property
    def version(self) -> int:
        return self._version

    def latest(self) -> tuple[int, dict[str, Any]]:
        return self._version, self._document

    def publish(self, document: dict[str, Any]) -> None:
        """Make ``document`` the latest and wake every listener."""
        if self._closed:
            return
        self._version += 1
        self._document = document
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def next_after(self, seen: int) -> tuple[int, dict[str, Any]]:
        """Wait for a version newer than ``seen`` and return the latest one."""
        while self._version <= seen:
            if self._closed:
                raise HubClosed
            await self._changed.wait()
        if self._closed:
            raise HubClosed
        return self._version, self._document

    def close(self) -> None:
        self._closed = True
        self._changed.set()
