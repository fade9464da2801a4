"""Chains of jobs: when a run of job A completes, every job whose ``after`` names A is asked for a run (source
``after``, reason ``after A <runId>``), coalesced with its other triggers like any."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from orchestrator.core.events import RunStatus
from orchestrator.core.runevents import RunFinished, RunStarted

log = logging.getLogger(__name__)


class Chains:
    """A run listener on every job's runner. ``followers(name)``: the jobs whose ``after`` names ``name`` now
    (a reload may change them); ``trigger(job, reason)`` puts a trigger on that job's queue at once (the runner
    saves it on its next turn)."""

    def __init__(self, followers: Callable[[str], Iterable[str]], trigger: Callable[[str, str], None]) -> None:
        self._followers = followers
        self._trigger = trigger

    def run_started(self, event: RunStarted) -> None:
        pass

    def run_finished(self, event: RunFinished) -> None:
        run = event.run
        if run.status is not RunStatus.COMPLETED:
            return
        for follower in self._followers(run.job):
            log.info("run %s of %s completed: %s runs after it", run.run_id, run.job, follower)
            self._trigger(follower, f"after {run.job} {run.run_id}")
