"""The runner's facade: builds its parts (intake, run loop, supervision, progress writer, history recorder),
recovers from a crash in an explicit step, serves them as one task group, and offers the commands and views
the rest of the service uses."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta

from orchestrator.core.clock import Clock
from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import DEFAULT_JOB, Pause, RunRecord, State
from orchestrator.core.runevents import RunFinished, RunListener
from orchestrator.core.schedule import Cooldown
from orchestrator.core.steps import Step
from orchestrator.job.processgroup import stop_leftover
from orchestrator.job.protocol import Job
from orchestrator.live.progress import Progress, ProgressFile
from orchestrator.runner.intake import Intake
from orchestrator.runner.ledger import Ledger
from orchestrator.runner.progresswriter import ProgressWriter
from orchestrator.runner.recording import HistoryRecorder
from orchestrator.runner.recovery import after_restart, interrupted, reconcile_history, recovered_state
from orchestrator.runner.runs import Parts, RunLoop, tell
from orchestrator.runner.slots import Slots
from orchestrator.runner.steps import RunSteps
from orchestrator.runner.supervision import Deadlines, Stop, Supervisor
from orchestrator.store import NO_HISTORY, RunHistory, StateStore
from orchestrator.store.runlogs import RunLogs

log = logging.getLogger(__name__)


class Runner:
    """Takes :class:`Trigger` s off ``queue`` and runs ``job``; owns the persisted :class:`State`.

    Building one reads and writes nothing: :meth:`recover` loads the state and recovers from a crash, and
    must come before :meth:`stop_leftover` and :meth:`serve`."""

    def __init__(
        self,
        *,
        queue: asyncio.Queue[Trigger],
        job: Job,
        clock: Clock,
        schedule: Cooldown,
        store: StateStore,
        progress_file: ProgressFile,
        on_change: Callable[[], None] = lambda: None,
        kill_grace: float = 10.0,
        timeout: timedelta | None = None,
        stall_timeout: timedelta | None = None,
        history: RunHistory = NO_HISTORY,
        listeners: Sequence[RunListener] = (),
        logs: RunLogs | None = None,
        name: str = DEFAULT_JOB,
        slots: Slots | None = None,
        on_ending: Callable[[RunRecord], None] = lambda run: None,
    ) -> None:
        self.name = name
        """The job's name: its runs say it, its job is told it (``SNAPSHOT_JOB``)."""
        self._ledger = Ledger(store)
        self._clock = clock
        self._on_change = on_change
        self._kill_grace = kill_grace
        self._intake = Intake(queue, self._ledger, on_change)
        self._supervisor = Supervisor(clock, Deadlines(timeout, stall_timeout), on_change)
        self._writer = ProgressWriter(progress_file, on_change)
        self._recorder = HistoryRecorder(history, logs, clock)
        self._steps = RunSteps()
        # Listeners kept by reference: the service adds its listeners to the same list after the runner is made.
        self._parts = Parts(
            self._ledger,
            clock,
            schedule,
            self._writer,
            self._recorder,
            self._supervisor,
            listeners,
            logs,
            on_change,
            self._steps,
            name,
            on_ending,
        )
        self._loop = RunLoop(self._parts, job, self._intake.work, slots or Slots(), self._intake.decided)
        self._intake.offer = self._loop.handoff.offer
        self._schedule = schedule
        self._recovered: RunFinished | None = None
        """A run the previous service died in, recorded as an error: listeners hear of it once we serve."""

    # ----------------------------------------------------------------------------------------- lifecycle
    def recover(self) -> None:
        """Load the state, owe the restart's cooldown, and recover from a crash: a run still marked current
        means the previous service died during it (see :mod:`orchestrator.runner.recovery`). Then close
        whatever the history still shows as running."""
        self._ledger.state = after_restart(self._ledger.load(), self._schedule)
        current = self._ledger.state.current
        if current is not None:
            done = interrupted(current, now=self._clock.now(), last_step=self._writer.last_step(current.run_id))
            self._ledger.state = recovered_state(self._ledger.state, done)
            self._ledger.save()
            self._recorder.record(done)
            self._recovered = RunFinished(done)
            step = f"{done.status.value.capitalize()}: {done.error}"
            with contextlib.suppress(OSError):
                self._writer.file.write(self._writer.ended(done, step=step))
        reconcile_history(self._recorder, self._ledger.state.last_run, self._clock.now(), job=self.name)

    async def serve(self) -> None:
        """Run until cancelled. Cancelling stops a running job and records it as ``cancelled``."""
        await self.stop_leftover()
        recovered, self._recovered = self._recovered, None
        if recovered is not None:
            tell(self._parts.listeners, recovered)
        if self.state.pending_count:
            self._intake.work.set()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._intake.serve(), name="runner-intake")
                tasks.create_task(self._writer.write_forever(), name="runner-progress-writer")
                tasks.create_task(self._loop.serve(), name="runner-work")
                tasks.create_task(self._recorder.catch_up_forever(), name="runner-history-catch-up")
        finally:
            self._intake.keep_left()
            # A last try for records the history still owes; whatever stays owed, the next start reconciles.
            self._recorder.write_owed()

    async def stop_leftover(self) -> None:
        """Stop the jobs of runs that earlier services died in, if they still run: never two jobs at once, not
        even across a crash. Called at start-up, before anything else happens. They stay in the state until
        stopped: a crash meanwhile leaves the next start the same search to make."""
        for run_id, _pid in self.state.leftovers:
            await stop_leftover(run_id, self._kill_grace)
        if self.state.leftovers:
            self._ledger.state = replace(self._ledger.state, leftovers=())
            self._ledger.save()

    def hold_first_run(self, until: asyncio.Event) -> None:
        """Start no run before ``until`` is set (the triggers folder's first look: a file saved before a crash
        but not yet removed is taken then, and joins the first run instead of causing a second)."""
        self._loop.first_run_gate = until

    def stop_starting(self) -> None:
        """Start no new run from now on (the service is shutting down); triggers stay pending."""
        self._loop.stopping = True

    # ------------------------------------------------------------------------------------------ commands
    def keep_for_next_start(self, trigger: Trigger) -> None:
        """A trigger that came after the runner stopped taking work: saved as pending, for the next start."""
        log.info("%s trigger while stopping: kept for the next start", trigger.source.value)
        self._intake.take([trigger])

    def take_now(self, trigger: Trigger) -> None:
        """A trigger saved before this returns, without a turn through the queue: a chain's, told in the
        turn of the run it follows, so that a crash right after that run's end cannot lose it."""
        self._intake.take([trigger])
        self._intake.work.set()
        self._on_change()

    def cancel(self, reason: str) -> str | None:
        """Ask the running run to end as ``cancelled``; its id, or ``None`` if nothing runs."""
        current = self.state.current
        if current is None:
            return None
        if self._supervisor.stop_request is None:
            self._supervisor.stop_request = Stop(RunStatus.CANCELLED, reason)
            # On disk before the caller hears "cancelling": a crash from here on must not run it again.
            self._loop.intend_stop(self._supervisor.stop_request)
            self._supervisor.watch.set()
            self._on_change()
        return current.run_id

    def set_pause(self, pause: Pause | None) -> bool:
        """Pause the automatic schedule (``None``: resume), saved at once; ``False`` if the save failed (the
        change holds in memory, and every later save carries it)."""
        self._ledger.state = replace(self._ledger.state, paused=pause)
        return self._ledger.save()

    def saw_file_progress(self, progress: Progress) -> None:
        """Progress read from the progress file. A job may write it itself: that is its report (a step, a
        detail), and a sign of life for stall detection; but the file also echoes what we wrote, late and
        perhaps out of order, and an echo must not count again (it would move the stall deadline by however
        late it is, or start an old step again)."""
        current = self.state.current
        if self._supervisor.is_echo(progress.sign) or current is None or progress.run_id != current.run_id:
            return
        self._steps.report(progress.report(), self._clock.now())
        self._supervisor.saw_progress(progress.sign)

    # ------------------------------------------------------------------------------------------- views
    @property
    def state(self) -> State:
        """The persisted state as the runner holds it (what the next save writes)."""
        return self._ledger.state

    @property
    def running(self) -> bool:
        return self.state.current is not None

    @property
    def waiting(self) -> bool:
        """Runs are asked for and wait for a slot: as many runs of other jobs go on as may at once."""
        return self._loop.waiting and not self.running

    @property
    def stopping(self) -> Stop | None:
        """Why the running run is being ended, while it gets its grace period."""
        return self._supervisor.stop_request if self.running else None

    @property
    def progress_on_disk(self) -> bool:
        """Whether the last progress write landed; if not, the file is behind and memory is the truth."""
        return self._writer.on_disk

    def tell_landed(self, landed: Callable[[Progress], None]) -> None:
        """``landed`` is told of each "running" the runner puts in the progress file just before a spawn."""
        self._writer.landed = landed

    @property
    def progress(self) -> Progress:
        """What the runner itself last reported (the web sees the file, which the job may also write)."""
        return self._writer.progress

    def steps(self) -> tuple[Step, ...]:
        """The running run's steps so far, the current one last (not ended); none when nothing runs."""
        return self._steps.so_far() if self.running else ()

    @property
    def triggers_received(self) -> collections.Counter[Source]:
        """Every trigger taken, by source (for the metrics)."""
        return self._intake.triggers_received
