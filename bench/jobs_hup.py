"""``python bench/jobs_hup.py serve ...``: ``python -m orchestrator serve`` with SIGHUP reading the jobs file again
(``Orchestrator.reload()``, which logs ``jobs file read again: ...``), for a checkout whose ``serve`` has no SIGHUP
handler yet. ``bench/jobs.py`` uses it only for the reload phase, and only when the service it started does not
catch SIGHUP (``SigCgt`` in ``/proc/PID/status``); the service's own handler, once there, replaces this one."""

from __future__ import annotations

import asyncio
import signal

from orchestrator.cli.main import main
from orchestrator.service import Orchestrator

_start = Orchestrator.start
_reloads: set[asyncio.Task[object]] = set()


async def _start_with_hangup(self: Orchestrator) -> None:
    await _start(self)
    loop = asyncio.get_running_loop()

    def hangup() -> None:
        task = loop.create_task(self.reload(), name="reload on SIGHUP")
        _reloads.add(task)
        task.add_done_callback(_done)

    if signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, None):
        loop.add_signal_handler(signal.SIGHUP, hangup)


def _done(task: asyncio.Task[object]) -> None:
    _reloads.discard(task)
    if not task.cancelled():
        task.exception()  # a refused reload is logged by the service; taken here so that asyncio does not warn


Orchestrator.start = _start_with_hangup  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
