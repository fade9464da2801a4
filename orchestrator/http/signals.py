"""The loop's signal handlers the app replaces while it serves, each put back as it was when it stops (tests run
many apps on one loop; a process may serve the app again)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


def replace_handler(
    loop: asyncio.AbstractEventLoop, sig: int, handler: Callable[[], None], restore: contextlib.ExitStack
) -> None:
    """Handle ``sig`` with ``handler`` until ``restore`` closes, which puts back the handler there was. Nothing
    happens where the loop cannot handle signals (not the main thread, not Unix)."""
    # asyncio has no public getter for a signal's handler: the one there is (aiohttp's run_app installs some) is
    # read from the loop's table, to be put back.
    previous: asyncio.Handle | None = getattr(loop, "_signal_handlers", {}).get(sig)
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(sig, handler)
        restore.callback(_put_back, loop, sig, previous)


def _put_back(loop: asyncio.AbstractEventLoop, sig: int, previous: asyncio.Handle | None) -> None:
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        if previous is None or previous.cancelled():
            loop.remove_signal_handler(sig)
        else:
            loop.add_signal_handler(sig, getattr(previous, "_callback"), *previous._args)  # noqa: B009
