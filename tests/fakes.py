"""Fakes at the logic seams: a scripted job the test finishes by hand, and in-process services built on it
and a fake clock (``Services``, behind the ``service``, ``services`` and ``client`` fixtures of conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from orchestrator.config import JobSettings, Settings, StoreSettings
from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus
from orchestrator.core.records import State
from orchestrator.core.steps import Parsed, StepReport
from orchestrator.job.protocol import JobResult, Report, RunContext, Started
from orchestrator.jobsfile import parse_jobs
from orchestrator.service import Orchestrator

Client = TestClient[web.Request, web.Application]
"""aiohttp's test client, on an in-process service's app (the ``client`` fixture)."""

T0 = datetime(2026, 1, 20, 10, 0, tzinfo=UTC)
WAIT = 10.0
FIRST_FAKE_PID = 4_000_000
"""The pids the scripted job reports: saved like a real job's, never signalled (leftovers are found by run id)."""


@dataclass
class ScriptedRun:
    ctx: RunContext
    sink: Report
    outcome: asyncio.Future[JobResult]
    pid: int
    """What the run reported as its process group, as the real job does once its process runs."""
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the runner stopped this run (cancelled its ``run`` call) instead of it finishing."""

    def report(
        self,
        percent: float | None,
        step: str | None = None,
        *,
        detail: str | None = None,
        done: int | None = None,
        total: int | None = None,
    ) -> None:
        """Report as the job would (a ``PROGRESS`` line, either form)."""
        self.sink(Parsed(StepReport(percent, step, detail, done, total)))

    def finish(self, status: RunStatus = RunStatus.COMPLETED, exit_code: int = 0, error: str | None = None) -> None:
        self.outcome.set_result(JobResult(status, exit_code=exit_code, error=error))


@dataclass
class ScriptedJob:
    """Each run reports a pid like the real job (so the runner saves it), then waits until the test calls
    ``finish``; ``started`` hands the test each run as it starts."""

    started: asyncio.Queue[ScriptedRun] = field(default_factory=asyncio.Queue)
    runs: list[ScriptedRun] = field(default_factory=list)
    _pids: itertools.count[int] = field(default_factory=lambda: itertools.count(FIRST_FAKE_PID), repr=False)

    async def run(self, ctx: RunContext, report: Report, started: Started = lambda pid: None) -> JobResult:
        run = ScriptedRun(ctx, report, asyncio.get_running_loop().create_future(), next(self._pids))
        started(run.pid)
        self.runs.append(run)
        self.started.put_nowait(run)
        try:
            return await run.outcome
        except asyncio.CancelledError:
            run.stopped.set()
            raise

    async def next_start(self, timeout: float = WAIT) -> ScriptedRun:
        async with asyncio.timeout(timeout):
            return await self.started.get()


async def ended(service: Orchestrator, run: ScriptedRun, timeout: float = WAIT) -> None:
    """Wait (bounded) until the service has recorded how ``run`` ended (it publishes that as ``lastRun``)."""
    version, doc = service.hub.latest()
    async with asyncio.timeout(timeout):
        while (doc.get("lastRun") or {}).get("runId") != run.ctx.run_id:
            version, doc = await service.hub.next_after(version)


async def published(service: Orchestrator, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Wait (bounded) until the hub publishes a status that satisfies ``predicate``."""
    version, doc = service.hub.latest()
    async with asyncio.timeout(WAIT):
        while not predicate(doc):
            version, doc = await service.hub.next_after(version)
    return doc


def assert_idle(service: Orchestrator) -> None:
    """Nothing runs and nothing waits to: no trigger queued, none pending, no run current. Read from state
    that changes in the same turn as its cause, unlike "no run started yet", which a few more loop turns
    could change."""
    assert service.unit.queue.empty(), "a trigger is waiting on the queue"
    assert not service.runner.state.pending_count, "a trigger is pending"
    assert not service.runner.running, "a run is going on"


async def settle(turns: int = 50) -> None:
    """Let every ready task run (no time passes: the clock is fake and nothing here sleeps)."""
    for _ in range(turns):
        await asyncio.sleep(0)


def make_settings(root: Path, interval: float = 30, cooldown: float = 5, **overrides: Any) -> Settings:
    """``overrides``: a section (``notify=NotifySettings(...)``) or a field of one by its name (``token=...``)."""
    settings = Settings(
        job=JobSettings(
            interval_minutes=interval, cooldown_minutes=cooldown, command=("true",), triggers_dir=root / "triggers"
        ),
        store=StoreSettings(data_dir=root / "data"),
    )
    return with_fields(settings, **overrides)


def with_fields(settings: Settings, **changes: Any) -> Settings:
    """``settings`` with each change made in the section that has a field of that name."""
    for name, value in changes.items():
        if name in {f.name for f in fields(Settings)}:
            settings = replace(settings, **{name: value})
            continue
        section = next(f.name for f in fields(Settings) if name in {g.name for g in fields(getattr(settings, f.name))})
        settings = replace(settings, **{section: replace(getattr(settings, section), **{name: value})})
    return settings


def jobs_orchestrator(
    root: Path, clock: FakeClock, job: ScriptedJob, text: str, *, reload_to: str = ""
) -> Orchestrator:
    """A service of the jobs file ``text`` in ``root`` (its default job runs ``job``; keep the others from running,
    or the test starts processes); a reload reads ``reload_to``."""
    path = root / "jobs.toml"
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "triggers").mkdir(parents=True, exist_ok=True)
    return Orchestrator(
        make_settings(root),
        clock=clock,
        job=job,
        jobs=parse_jobs(text, path),
        load_jobs=lambda: parse_jobs(reload_to, path),
    )


def make_orchestrator(
    root: Path, clock: FakeClock, job: ScriptedJob, interval: float = 30, cooldown: float = 5, **overrides: Any
) -> Orchestrator:
    """``overrides``: as for :func:`make_settings`, e.g. ``timeout_minutes=20``."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    return Orchestrator(make_settings(root, interval, cooldown, **overrides), clock=clock, job=job)


async def end_startup(service: Orchestrator, job: ScriptedJob) -> ScriptedRun:
    """Finish the service's start-up run and wait (bounded) until the service has recorded its end."""
    startup = await job.next_start()
    startup.finish()
    await ended(service, startup)
    return startup


class Services:
    """Builds in-process services on a fake clock and a scripted job, with the settings of the test's
    ``service`` marker unless told otherwise, and stops every one it started (the ``services`` fixture)."""

    def __init__(self, root: Path, clock: FakeClock, job: ScriptedJob, **settings: Any) -> None:
        self.root, self.clock, self.job, self.settings = root, clock, job, settings
        self._started: list[Orchestrator] = []

    def build(
        self,
        root: Path | None = None,
        *,
        clock: FakeClock | None = None,
        job: ScriptedJob | None = None,
        **settings: Any,
    ) -> Orchestrator:
        """A service not started yet: in ``root`` (the test's folder), on the test's clock and job by default;
        ``settings`` (``interval=``, ``cooldown=`` or a field, as for :func:`make_settings`) override the marker's."""
        return make_orchestrator(
            self.root if root is None else root,
            self.clock if clock is None else clock,
            self.job if job is None else job,
            **{**self.settings, **settings},
        )

    async def start(
        self,
        root: Path | None = None,
        *,
        clock: FakeClock | None = None,
        job: ScriptedJob | None = None,
        **settings: Any,
    ) -> Orchestrator:
        """A service built as :meth:`build` does, started; it is stopped when the test ends if not before."""
        return await self.started(self.build(root, clock=clock, job=job, **settings))

    async def started(self, service: Orchestrator) -> Orchestrator:
        """Start a service built earlier (the test set something up between); stopped as :meth:`start` says."""
        await service.start()
        self._started.append(service)
        return service

    async def stop_all(self) -> None:
        """Stop every service started here, the last first (stopping one the test stopped already is a no-op)."""
        async with contextlib.AsyncExitStack() as stack:  # each is stopped even if an earlier stop fails
            for service in self._started:
                stack.push_async_callback(service.stop)
            self._started.clear()


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


class MemoryStates:
    """One job's state in memory (a :class:`~orchestrator.store.api.StateStore`), every stored save in
    ``saved``. ``refuse`` fails saves as a full disk would. The second half of a save split by :meth:`prepare`
    (the call a burst makes on a worker thread) sets ``writing``, waits for ``gate`` (open unless ``gated``),
    fails also when ``refuse_thread``, and keeps its state in ``on_thread`` too."""

    def __init__(self, *, gated: bool = False, wait: float = 10.0) -> None:
        self.saved: list[State] = []
        self.on_thread: list[State] = []
        self.refuse = False
        self.refuse_thread = False
        self.last_error = ""
        self.writing = threading.Event()
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self._wait = wait

    def load(self) -> State:
        return State()

    def save(self, state: State) -> bool:
        if self.refuse:
            self.last_error = "refused"
            return False
        self.saved.append(state)
        return True

    def prepare(self, state: State) -> Callable[[], bool]:
        def write() -> bool:
            self.writing.set()
            assert self.gate.wait(self._wait)
            if self.refuse_thread:
                self.last_error = "refused"
                return False
            if not self.save(state):
                return False
            self.on_thread.append(state)
            return True

        return write
