"""Retention: after each run ends, the history keeps the newest ``--keep-runs`` runs of each job (and, with
``--keep-days``, none older), and a removed run's log file goes with its record. Log files that no record names
(a crash between the two removals, a disk that refused the unlink) are removed at the same time.

A run listener: it only starts a task; the pruning itself runs on a worker thread, one at a time (a prune asked
for while one goes on runs once more after it). Each kind of failure is logged once until it clears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from orchestrator.core.clock import Clock
from orchestrator.core.runevents import RunFinished, RunStarted
from orchestrator.core.streak import Streak
from orchestrator.store.api import HistoryNotOpened, PrunedRun, RunHistory, StoreUnavailable
from orchestrator.store.runlogs import RunLogs

log = logging.getLogger(__name__)


class Retention:
    """Prunes the history and the run logs after every run (a :class:`~orchestrator.core.runevents.RunListener`)."""

    def __init__(self, history: RunHistory, logs: RunLogs, clock: Clock, *, keep_runs: int, keep_days: float) -> None:
        if keep_runs < 1:
            raise ValueError(f"keep_runs must be at least 1, got {keep_runs}")
        self._history = history
        self._logs = logs
        self._clock = clock
        self.keep_runs = keep_runs
        self.keep_days = keep_days
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._failing = {kind: Streak() for kind in ("unexpected", "prune", "orphans", "unlink")}
        """Each kind of failure, said once until it clears."""
        self.removed = 0
        """Runs removed so far (for the tests)."""
        self._pruned: list[Callable[[list[str]], None]] = []

    def on_pruned(self, callback: Callable[[list[str]], None]) -> None:
        """Call ``callback`` with the ids of the runs removed by each prune (on the loop), for what mirrors the
        history in memory."""
        self._pruned.append(callback)

    def run_started(self, event: RunStarted) -> None:
        pass

    def run_finished(self, event: RunFinished) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self._prune_until_done(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait(self) -> None:
        """Until the pruning asked for so far is done (for the tests)."""
        while self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    async def _prune_until_done(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            try:
                await self._prune_once()
            except Exception:
                # Any error (a bug, the unforeseen): said once, and the next run tries again. Uncaught, it would end
                # this task unseen ("Task exception was never retrieved") and then fail the service's stop.
                if self._failing["unexpected"].failed():
                    log.exception("retention failed unexpectedly; old runs stay until it works (said once)")
            else:
                self._cleared("unexpected")

    async def _prune_once(self) -> None:
        # Cut-off taken now, on the loop: a run that starts later (even during the prune) is newer than it.
        older_than = self._clock.now() - timedelta(days=self.keep_days) if self.keep_days else None
        # Not cancelled half-way: the thread would go on anyway, and its outcome must be logged.
        doomed = await asyncio.shield(asyncio.to_thread(self._prune, older_than))
        if doomed is None:
            return
        if doomed:
            for callback in self._pruned:
                callback([run.run_id for run in doomed])
        paths = [path for run in doomed if (path := self._logs.path_of(run.log_path)) is not None]
        # Through the log writer: a pruned run's last lines, still on their way, must not land after this.
        await asyncio.shield(self._logs.remove([run.run_id for run in doomed], partial(self._remove_files, paths)))

    def _prune(self, older_than: datetime | None) -> list[PrunedRun] | None:
        try:
            doomed = self._history.prune(keep=self.keep_runs, older_than=older_than)
        except HistoryNotOpened:
            return None  # said at start; and with no records to go by, no log is an orphan
        except StoreUnavailable as exc:
            self._failed("prune", "cannot prune the run history %s: %s", self._history.location, exc)
            return None
        self._cleared("prune")
        self.removed += len(doomed)
        if doomed:
            names = ", ".join(run.run_id for run in doomed[:5]) + (", ..." if len(doomed) > 5 else "")
            log.info("retention: removed %d old run(s) with their logs: %s", len(doomed), names)
        return doomed

    def _remove_files(self, paths: list[Path]) -> None:
        self._remove(paths)
        self._remove_orphans(self._logs.get)  # a dict lookup from this thread: safe, and no batch is written

    def _remove_orphans(self, live: Callable[[str], object]) -> None:
        """Remove the log files that no run record names. Listed before the records are read: a run whose
        file is in the listing was recorded before its first line was written, so it is not taken for one."""
        try:
            # Through the folder's descriptor: else a logs folder swapped for a symlink would have the target's files
            # removed.
            names = self._logs.files.names()
        except FileNotFoundError:
            return
        except OSError as exc:
            self._failed("orphans", "cannot list the run logs in %s: %s", self._logs.folder, exc)
            return
        if not names:
            return
        try:
            known = self._history.run_ids()
        except StoreUnavailable as exc:
            self._failed("prune", "cannot read the run history %s: %s", self._history.location, exc)
            return
        self._cleared("orphans")
        orphans = [name for name in names if name.removesuffix(".log") not in known]
        orphans = [name for name in orphans if live(name.removesuffix(".log")) is None]
        if orphans:
            log.info("retention: %d run log(s) without a run record removed", len(orphans))
        self._remove([self._logs.folder / name for name in orphans])

    def _remove(self, paths: list[Path]) -> None:
        try:
            self._logs.files.remove([path.name for path in paths if path.parent == self._logs.folder])
        except OSError as exc:
            # Left behind as orphans: the next prune tries again.
            self._failed("unlink", "cannot remove old run logs in %s: %s", self._logs.folder, exc)
            return
        if paths:
            self._cleared("unlink")

    def _failed(self, kind: str, message: str, *args: object) -> None:
        if self._failing[kind].failed():
            log.error(message + " (said once until it works again)", *args)

    def _cleared(self, kind: str) -> None:
        self._failing[kind].recovered()
