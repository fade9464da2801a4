"""Chains of jobs: when a run of job A completes, every job whose ``after`` names A is asked for a run (source
``after``, reason ``after A <runId>``), coalesced with its other triggers like any. The followers' triggers are
saved before A's outcome is: a crash in between finds A's run interrupted and runs it again (its followers may
then run twice), never a completed run whose followers were not asked."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from orchestrator.core.events import RunStatus
from orchestrator.core.records import RunRecord

log = logging.getLogger(__name__)


class Chains:
    """Told by every job's runner of each completed run (:meth:`run_ending`). ``followers(name)``: the jobs
    whose ``after`` names ``name`` now (a reload may change them); ``trigger(job, reason)`` saves a trigger for
    that job before it returns."""

    def __init__(self, followers: Callable[[str], Iterable[str]], trigger: Callable[[str, str], None]) -> None:
        self._followers = followers
        self._trigger = trigger

    def run_ending(self, run: RunRecord) -> None:
        """``run`` completed; its outcome is not saved yet."""
        if run.status is not RunStatus.COMPLETED:
            return
        for follower in self._followers(run.job):
            log.info("run %s of %s completed: %s runs after it", run.run_id, run.job, follower)
            self._trigger(follower, f"after {run.job} {run.run_id}")
