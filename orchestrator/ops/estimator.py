"""The ``eta`` of the status document: :mod:`orchestrator.core.eta` fed with the running run, its progress and its
steps so far, and the durations and steps of recent successful runs, read from the runs held in memory
(:mod:`orchestrator.ops.recent`): the status document is built on every progress change, and must never wait for
the disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from orchestrator.core.eta import ETA_SAMPLE_RUNS, Eta, PercentSeen, StepPlan, estimate
from orchestrator.core.events import RunStatus
from orchestrator.core.records import RunRecord
from orchestrator.core.steps import Step
from orchestrator.live.progress import Progress
from orchestrator.ops.recent import RecentRuns

ETA_LOOKBACK = 5 * ETA_SAMPLE_RUNS
"""Finished runs looked back over to find the recent successful ones among failures and cancels."""


class FinishEstimator:
    """Answers the status document's ``eta`` from the recent runs held by ``recent``."""

    def __init__(self, recent: RecentRuns) -> None:
        self._recent = recent
        self._seen = PercentSeen()
        self._planned: tuple[tuple[Step, ...], ...] | None = None
        self._plan: StepPlan | None = None

    @property
    def durations(self) -> tuple[float, ...]:
        """Durations in seconds of the latest successful runs, newest first."""
        found: list[float] = []
        for run in self._recent.completed(ETA_LOOKBACK, within=ETA_LOOKBACK):
            if run.duration_seconds is not None:
                found.append(run.duration_seconds)
                if len(found) == ETA_SAMPLE_RUNS:
                    break
        return tuple(found)

    @property
    def plan(self) -> StepPlan | None:
        """What the steps of the latest successful runs say of a run's steps (``None``: nothing)."""
        runs = self._recent.completed_steps()
        # Made again only when a run ends, not for each status document (one per progress change).
        if runs is not self._planned:
            self._planned, self._plan = runs, StepPlan.of(runs)
        return self._plan

    def status_field(
        self, run: RunRecord | None, progress: Progress, now: datetime, steps: Sequence[Step] = ()
    ) -> dict[str, Any] | None:
        """The ``eta`` of the status document: ``None`` when nothing runs or nothing can be said. ``steps`` are
        the running run's steps so far, the current one last."""
        eta = self.finish(run, progress, now, steps)
        return None if eta is None else eta.to_json(now)

    def finish(
        self, run: RunRecord | None, progress: Progress, now: datetime, steps: Sequence[Step] = ()
    ) -> Eta | None:
        """The estimate behind :meth:`status_field`: when ``run`` ends, as of its last report."""
        if run is None:
            return None
        percent: float | None = None
        percent_at: datetime | None = None
        if progress.status is RunStatus.RUNNING and progress.run_id in (run.run_id, None):
            percent = progress.progress
            percent_at = self._seen.seen(run.run_id, percent, now)
        return estimate(
            started_at=run.started_at,
            percent=percent,
            percent_at=percent_at,
            recent_durations=self.durations,
            steps=steps,
            plan=self.plan,
        )
