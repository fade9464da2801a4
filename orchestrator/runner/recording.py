"""Recording runs in the history: each record written as it comes; records the history could not take are
owed, written with the next one, retried every :data:`HISTORY_RETRY`, and tried once more at the stop."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import timedelta

from orchestrator.core.clock import Clock
from orchestrator.core.records import RunRecord
from orchestrator.core.steps import Step
from orchestrator.core.streak import Streak
from orchestrator.store import RunHistory, StoreUnavailable
from orchestrator.store.runlogs import RunLogs

log = logging.getLogger(__name__)

HISTORY_RETRY = timedelta(seconds=30)
"""How often records the history could not take are tried again while no other record comes."""


class HistoryRecorder:
    """Writes run records to the history, with the run's log file beside each."""

    def __init__(self, history: RunHistory, logs: RunLogs | None, clock: Clock) -> None:
        self.history = history
        self._logs = logs
        self._clock = clock
        self._writes = Streak()
        self._behind = asyncio.Event()
        """Set while the history holds records it could not write: the catch-up task retries them."""

    def record(self, run: RunRecord, steps: tuple[Step, ...] | None = None) -> None:
        try:
            log_path = self._logs.relative_path(run.run_id) if self._logs is not None else None
            self.history.record(replace(run, pid=None), log_path=log_path, steps=steps)
        except StoreUnavailable as exc:
            # The run itself goes on, and the state file still has it; the history keeps the record and
            # writes it with the next one, or when the catch-up task tries again.
            if self._writes.failed():
                log.error(
                    "cannot record run %s in the history %s: %s; kept, and written once the history can be "
                    "written again",
                    run.run_id,
                    self.history.location,
                    exc,
                )
            self._behind.set()
        else:
            self._caught_up()

    def _caught_up(self) -> None:
        if self._writes.recovered():
            log.info("the history %s can be written again; the runs kept meanwhile are in it", self.history.location)
        self._behind.clear()

    async def catch_up_forever(self) -> None:
        """While records wait for the history, try them again every :data:`HISTORY_RETRY`: without this, a run
        whose end could not be written would show as running until the next run, or the next start."""
        never = asyncio.Event()
        while True:
            await self._behind.wait()
            await self._clock.wait(never, self._clock.now() + HISTORY_RETRY)
            self.write_owed()

    def write_owed(self) -> None:
        if not self._behind.is_set():
            return
        if self.history.owed:
            try:
                self.history.write_owed()
            except StoreUnavailable:
                return  # said once already, when the first record failed
        self._caught_up()
