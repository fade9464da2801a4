"""The running run's steps: every report of the job (its ``PROGRESS`` lines, or the progress file it writes
itself) goes through :class:`RunSteps`, which keeps the steps (:class:`~orchestrator.core.steps.StepTracker`),
says once per run what had to be cut from the job's reports, and hands the steps over at the run's end."""

from __future__ import annotations

import logging
import re
from datetime import datetime

from orchestrator.core.steps import MAX_STEPS, MORE_STEPS, Parsed, Step, StepTracker

log = logging.getLogger(__name__)

_NUMBERS = re.compile(r"\d+")


class RunSteps:
    def __init__(self) -> None:
        self._tracker = StepTracker()
        self._run_id = ""
        self._said: set[str] = set()
        """The kinds of problem said for this run already (one log line per problem, not per report)."""

    def begin(self, run_id: str, first_step: str, now: datetime) -> None:
        self._run_id = run_id
        self._said.clear()
        self._tracker.begin(first_step, now)

    def report(self, parsed: Parsed, now: datetime) -> Step | None:
        """Apply one report; the current step after it."""
        for problem in parsed.problems:
            self._say(problem)
        folded = self._tracker.folded
        self._tracker.report(parsed.report, now)
        if self._tracker.folded and not folded:
            self._say(f"more than {MAX_STEPS} steps: the later ones are kept as one, {MORE_STEPS!r}")
        return self._tracker.current

    @property
    def current(self) -> Step | None:
        return self._tracker.current

    def so_far(self) -> tuple[Step, ...]:
        """The steps of the running run so far, the current one last (not ended)."""
        return self._tracker.steps()

    def finish(self, now: datetime, percent: float | None) -> tuple[Step, ...]:
        return self._tracker.finish(now, percent)

    def _say(self, problem: str) -> None:
        kind = _NUMBERS.sub("N", problem)
        if kind not in self._said:
            self._said.add(kind)
            log.warning("run %s: progress report: %s (said once per run)", self._run_id, problem)
