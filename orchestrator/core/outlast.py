"""Waiting for a future to its end even if the waiter is cancelled meanwhile: a write, a removal or a stop
cut short halfway leaves things worse than either finishing it or never starting it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TypeVar

T = TypeVar("T")


async def wait_through_cancel(future: asyncio.Future[T]) -> bool:
    """Wait until ``future`` is done, swallowing cancels meanwhile; ``True`` if we were cancelled."""
    interrupted = False
    while not future.done():
        try:
            await asyncio.wait({future})
        except asyncio.CancelledError:
            interrupted = True
    return interrupted


async def outlast_cancel(future: asyncio.Future[T]) -> T:
    """Await ``future`` to its end even if we are cancelled meanwhile; then let the cancel go on."""
    if await wait_through_cancel(future):
        if not future.cancelled():
            future.exception()  # retrieved: its outcome no longer matters
        raise asyncio.CancelledError
    return future.result()


async def cancel_and_outlast(task: asyncio.Future[T]) -> bool:
    """Cancel ``task`` and wait for it to end even if we are cancelled meanwhile (a second cancel would cut
    its clean-up short); its outcome is dropped. ``True`` if we were cancelled while waiting."""
    task.cancel()
    interrupted = await wait_through_cancel(task)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
    return interrupted
