"""The newest finished runs, held in memory for the estimates (:mod:`orchestrator.ops.estimator`) and the
missed-run checks (:mod:`orchestrator.ops.notify`): the status document is built on every progress change and
must never wait for the disk.

:class:`RecentRuns` reads the history once, on a worker thread, when it starts serving, then keeps each run
that finishes (a run listener), and forgets the runs retention removes from the history. It holds the newest
:data:`WINDOW` finished runs of any outcome, as the history would list them, so each reader asks "the completed
runs among the newest so many" as it would ask the history; and the steps of the newest
:data:`~orchestrator.core.eta.ETA_SAMPLE_RUNS` completed runs, all the estimate looks at.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from orchestrator.core.eta import ETA_SAMPLE_RUNS
from orchestrator.core.events import RunStatus
from orchestrator.core.runevents import RunFinished, RunStarted
from orchestrator.core.steps import Step
from orchestrator.core.streak import Streak
from orchestrator.store.api import HistoryNotOpened, Page, RunHistory, StoredRun, StoreUnavailable

log = logging.getLogger(__name__)

WINDOW = 100
"""Finished runs held, newest first: the most any reader looks back over."""


class RecentRuns:
    """A run listener (see :class:`orchestrator.core.runevents.RunListener`) holding the newest finished runs.
    :meth:`serve` is its one task: it reads the history, then tells :meth:`watch`'s callbacks."""

    def __init__(self, history: RunHistory, *, job: str | None = None) -> None:
        self._history = history
        self._job = job
        """Whose runs: the history holds every job's (``None``: every run in it)."""
        self._runs: collections.deque[StoredRun] = collections.deque(maxlen=WINDOW)
        self._steps: collections.deque[tuple[str, tuple[Step, ...]]] = collections.deque(maxlen=ETA_SAMPLE_RUNS)
        """The steps of the newest completed runs, by run id, newest first."""
        self._step_runs: tuple[tuple[Step, ...], ...] = ()
        self._loaded = asyncio.Event()
        self._wanted = asyncio.Event()
        self._wanted.set()  # read once at start
        self._keeping = True
        """``False`` for a history that was never opened: it knows of no recent run, and neither does this."""
        self._heard: list[StoredRun] = []
        """Runs that finished before the history was read: put back on top of what it held once it is (their
        steps, too, but those are held in ``_steps`` meanwhile, and no more of them than it holds)."""
        self._watchers: list[Callable[[], None]] = []
        self._reads = Streak()

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the history has been read (a run that finishes is told to listeners anyway)."""
        self._watchers.append(callback)

    async def ready(self) -> None:
        """Until the history has been read (or found never opened)."""
        await self._loaded.wait()

    # ------------------------------------------------------------------------------------------- reads
    def completed(self, limit: int, *, within: int) -> tuple[StoredRun, ...]:
        """Up to ``limit`` runs that completed, newest first, among the newest ``within`` finished runs."""
        found: list[StoredRun] = []
        for index, run in enumerate(self._runs):
            if index >= within or len(found) >= limit:
                break
            if run.status is RunStatus.COMPLETED:
                found.append(run)
        return tuple(found)

    def documents(self, limit: int, *, within: int) -> list[Mapping[str, Any]]:
        """The records of :meth:`completed`, as the history stores them."""
        return [run.document for run in self.completed(limit, within=within)]

    def completed_steps(self) -> tuple[tuple[Step, ...], ...]:
        """The steps of the newest completed runs (at most ``ETA_SAMPLE_RUNS``), newest first; a run that reported
        none has none. The same tuple until one of them changes, so a reader may keep what it made of it."""
        return self._step_runs

    # ---------------------------------------------------------------------------------------- listener
    def run_started(self, event: RunStarted) -> None:
        pass

    def run_finished(self, event: RunFinished) -> None:
        if not self._keeping:
            return
        run = StoredRun.of(event.run.to_json())
        self._add(run, event.steps)
        if not self._loaded.is_set():
            self._heard.append(run)
            self._wanted.set()  # a history that could not be read at start is tried again after each run

    def forget(self, run_ids: list[str]) -> None:
        """Runs removed from the history (by retention): gone from here too, as they would be from a read."""
        gone = set(run_ids)
        self._runs = collections.deque((run for run in self._runs if run.run_id not in gone), maxlen=WINDOW)
        self._heard = [run for run in self._heard if run.run_id not in gone]
        self._steps = collections.deque(
            ((run_id, steps) for run_id, steps in self._steps if run_id not in gone), maxlen=ETA_SAMPLE_RUNS
        )
        self._step_runs = tuple(steps for _, steps in self._steps)

    def _add(self, run: StoredRun, steps: tuple[Step, ...] | None = None) -> None:
        if steps is not None and run.status is RunStatus.COMPLETED:
            self._add_steps(run.run_id, steps)
        for index, held in enumerate(self._runs):
            if held.run_id == run.run_id:  # a run the history had already (the one recovered at start)
                self._runs[index] = run
                return
        self._runs.appendleft(run)

    def _add_steps(self, run_id: str, steps: tuple[Step, ...]) -> None:
        # Details are for people, not for estimates: dropped, they cannot make the steps held weigh much more
        # than their names.
        kept = tuple(replace(step, detail=None) for step in steps)
        for index, (held, _) in enumerate(self._steps):
            if held == run_id:
                self._steps[index] = (run_id, kept)
                break
        else:
            self._steps.appendleft((run_id, kept))
        self._step_runs = tuple(steps for _, steps in self._steps)

    # -------------------------------------------------------------------------------------------- task
    async def serve(self) -> None:
        """Read the history until it can be read once, then wait to be cancelled (the service takes a task that
        ends by itself for a bug). Never raises: a failing history is logged once per streak, and the runs
        heard meanwhile stay in use."""
        await self._load()
        await asyncio.Event().wait()

    async def _load(self) -> None:
        while not self._loaded.is_set():
            await self._wanted.wait()
            self._wanted.clear()
            try:
                page, steps = await asyncio.to_thread(self._read)
            except HistoryNotOpened:
                self._keeping = False
                self._runs.clear()
                self._steps.clear()
                self._step_runs = ()
                self._heard.clear()
                self._loaded.set()
                return
            except StoreUnavailable as exc:
                if self._reads.failed():
                    log.error("cannot read recent run durations from %s: %s", self._history.location, exc)
                continue
            self._reads.recovered()
            self._runs = collections.deque(page.runs, maxlen=WINDOW)
            heard_steps = list(self._steps)
            self._steps.clear()
            for stored, its_steps in reversed(steps):
                self._add_steps(stored.run_id, its_steps)
            for run_id, its_steps in reversed(heard_steps):
                self._add_steps(run_id, its_steps)
            for run in self._heard:
                self._add(run)
            self._heard.clear()
            self._loaded.set()
            for callback in self._watchers:
                callback()

    def _read(self) -> tuple[Page, tuple[tuple[StoredRun, tuple[Step, ...]], ...]]:
        job = self._job
        return self._history.page(limit=WINDOW, job=job), self._history.completed_steps(ETA_SAMPLE_RUNS, job=job)
