"""How the event loop hears that a job's process exited: through a pidfd on the loop itself, where the kernel and
the Python have one (Linux 5.3), rather than through what asyncio does by default on Python 3.11: a thread
started for each process, whose start, right after the spawn, competes with the job's own start (a few tenths of
a millisecond of the job's first instruction on a busy machine). Python 3.12 and later take the pidfd by
themselves."""

from __future__ import annotations

import asyncio
import os
import sys
import warnings


class ChildWatch:
    """Installs the pidfd watcher for the running loop at :meth:`start`; :meth:`close` puts back the one of
    before (none: asyncio makes its default when next asked). Close it only once no job of ours runs."""

    def __init__(self) -> None:
        self._ours: asyncio.AbstractChildWatcher | None = None
        self._before: object = None

    def start(self) -> None:
        if self._ours is not None or sys.version_info >= (3, 12) or not _pidfd_works():
            return
        policy = asyncio.get_event_loop_policy()
        self._before = getattr(policy, "_watcher", None)
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(asyncio.get_running_loop())
        # The policy's own slot, not set_child_watcher(): that would close the watcher of before, which others
        # may still hold.
        policy._watcher = watcher  # type: ignore[attr-defined]
        self._ours = watcher

    def close(self) -> None:
        watcher, self._ours = self._ours, None
        if watcher is None:
            return
        with warnings.catch_warnings():
            # A process still watched (a job that escaped its stop) is let go: its exit is nobody's news now.
            warnings.simplefilter("ignore", RuntimeWarning)
            watcher.close()
        policy = asyncio.get_event_loop_policy()
        current: object = getattr(policy, "_watcher", None)
        if current is watcher:
            policy._watcher = self._before  # type: ignore[attr-defined]


def _pidfd_works() -> bool:
    """Whether this kernel gives pidfds (not one older than 5.3, nor a sandbox that forbids the call)."""
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True
