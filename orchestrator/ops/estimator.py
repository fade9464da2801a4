"""The ``eta`` of the status document: :mod:`orchestrator.core.eta` fed with the running run, its progress, and the
durations of recent successful runs.

Those durations come from the run history, read on a worker thread at start and again after each
successful run, and kept in memory: the status document is built on every progress change, and must never
wait for the disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from orchestrator.core.eta import RECENT_RUNS, PercentSeen, estimate
from orchestrator.core.events import RunStatus
from orchestrator.core.records import RunRecord
from orchestrator.core.runevents import RunFinished, RunStarted
from orchestrator.live.progress import Progress
from orchestrator.store.api import RunHistory, StoreUnavailable

log = logging.getLogger(__name__)

HISTORY_LOOKBACK = 5 * RECENT_RUNS
"""Runs read from the history to find the recent successful ones among failures and cancels."""


class FinishEstimator:
    """A run listener (see :class:`orchestrator.core.runevents.RunListener`) that keeps recent durations at hand and
    answers the status document's ``eta``. :meth:`serve` is its one task: the service starts and cancels it."""

    def __init__(self, history: RunHistory, on_change: Callable[[], None] = lambda: None) -> None:
        self._history = history
        self._on_change = on_change
        self._durations: tuple[float, ...] = ()
        self._stale = asyncio.Event()
        self._stale.set()  # read once at start
        self._failing = False
        self._seen = PercentSeen()

    @property
    def durations(self) -> tuple[float, ...]:
        """Durations in seconds of the latest successful runs, newest first."""
        return self._durations

    # ------------------------------------------------------------------------------------- listener
    def run_started(self, event: RunStarted) -> None:
        pass

    def run_finished(self, event: RunFinished) -> None:
        run = event.run
        if run.status is RunStatus.COMPLETED:
            self._stale.set()

    # ----------------------------------------------------------------------------------------- task
    async def serve(self) -> None:
        """Re-read the durations whenever they may have changed; never raises (a failing history is logged
        once per streak, and the last durations read stay in use)."""
        while True:
            await self._stale.wait()
            self._stale.clear()
            try:
                durations = await asyncio.to_thread(_recent_durations, self._history)
            except StoreUnavailable as exc:
                if not self._failing:
                    log.error("cannot read recent run durations for the estimates: %s", exc)
                self._failing = True
                continue
            self._failing = False
            if durations != self._durations:
                self._durations = durations
                self._on_change()

    # -------------------------------------------------------------------------------------- status
    def status_field(self, run: RunRecord | None, progress: Progress, now: datetime) -> dict[str, Any] | None:
        """The ``eta`` of the status document: ``None`` when nothing runs or nothing can be said."""
        if run is None:
            return None
        percent: float | None = None
        percent_at: datetime | None = None
        if progress.status is RunStatus.RUNNING and progress.run_id in (run.run_id, None):
            percent = progress.progress
            percent_at = self._seen.seen(run.run_id, percent, now)
        eta = estimate(
            started_at=run.started_at,
            percent=percent,
            percent_at=percent_at,
            recent_durations=self._durations,
        )
        return None if eta is None else eta.to_json(now)


def _recent_durations(history: RunHistory) -> tuple[float, ...]:
    found: list[float] = []
    for run in history.newest(HISTORY_LOOKBACK, status=RunStatus.COMPLETED, within=HISTORY_LOOKBACK):
        if run.duration_seconds is not None:
            found.append(run.duration_seconds)
            if len(found) == RECENT_RUNS:
                break
    return tuple(found)
