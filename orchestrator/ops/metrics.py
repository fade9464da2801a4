"""Prometheus metrics (``GET /metrics``): what a monitoring system needs to tell that snapshots are fresh.

Events (runs that ended, how long runs and their steps took, coalesced triggers) are counters and histograms fed
by a run listener; everything that is a state (running, paused, progress, queue, clients, timestamps) is read
from the service at scrape time by a custom collector, so no value can go stale and nothing has to be kept in
sync.
Every series of a job carries a ``job`` label; the jobs are read at scrape time, so a job a reload adds shows up
and a removed one's gauges go (its counters stay until the service restarts, as counters do).
Each service has its own :class:`CollectorRegistry`: tests build many services in one process, and the process
metrics of the default registry are not what this endpoint is about. It and its series are made (and
``prometheus_client`` imported) when first needed: at the first scrape, or when the first run ends; a service
that is only started pays for neither.

The last success time survives a restart: when a job is first served it is taken from the state file's last run
of that job, else from its newest completed run in the history; unknown (never, or pruned away) it is 0, which an
alert on staleness rightly treats as "long ago".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from orchestrator.core.events import RunStatus, Source
from orchestrator.core.records import RunRecord, State
from orchestrator.core.runevents import RunFinished, RunStarted
from orchestrator.core.steps import Step
from orchestrator.store.api import MAX_PAGE, RunHistory, StoreUnavailable

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""``text/plain; version=0.0.4; charset=utf-8``: the format every Prometheus version scrapes."""
OUTCOMES = (RunStatus.COMPLETED, RunStatus.ERROR, RunStatus.CANCELLED)
DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200)
"""Seconds, for jobs from a few seconds to two hours (the first user's job takes twenty minutes)."""
STEP_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
"""Seconds, for steps from a fraction of a second (a job's start-up) to two hours."""
MAX_STEP_NAMES = 50
"""Step names that get a series of their own; later ones share :data:`OTHER_STEPS`. Each name costs a series per
bucket, and a job that puts a count in its step's name ("Fetched 1234 PRs") would otherwise make new ones for ever."""
OTHER_STEPS = "other"
MAX_HISTORY_SCAN = 20
"""Pages of the history (of :data:`MAX_PAGE` runs) looked through at start for the last success: 10,000 runs."""


class Watched(Protocol):
    """What the metrics read of one job at scrape time: its status view (orchestrator/unit.py is one)."""

    @property
    def state(self) -> State: ...

    @property
    def running(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...

    def next_run_at(self) -> datetime | None: ...

    def triggers_received(self) -> Mapping[Source, int]: ...


class Metrics:
    """The service's metrics: a :class:`RunListener` for events (every job's runner tells it; each run says its
    job), a collector for the live state of the jobs ``jobs`` gives at scrape time (a reload adds and removes
    jobs), and the registry that renders both (:meth:`render`). Every series of a job carries its ``job`` label;
    those of the service (its streams) carry none."""

    def __init__(self, jobs: Callable[[], Mapping[str, Watched]], history: RunHistory) -> None:
        self._jobs = jobs
        self._history = history
        self._sse_clients: Callable[[], int] = lambda: 0
        self._log_streams: Callable[[], int] = lambda: 0
        self._watched: dict[str, str] = {}
        """Each job's run this process saw start: only its duration is observed (a recovered run's includes
        downtime)."""
        self.last_success: dict[str, datetime | None] = {}
        """When each job's last completed run ended, as far as known."""
        self._step_names: dict[str, set[str]] = {}
        self._added: list[str] = []
        """The jobs served so far, in order: each has its series at 0 from when the series are made."""
        self._series: _Series | None = None

    @property
    def series(self) -> _Series:
        """The registry and the series of the events, made at the first call (with every job's at 0)."""
        if self._series is None:
            self._series = _Series(self)
            for name in self._added:
                self._series.zero(name)
        return self._series

    @property
    def registry(self) -> CollectorRegistry:
        return self.series.registry

    @property
    def runs(self) -> Counter:
        return self.series.runs

    @property
    def durations(self) -> Histogram:
        return self.series.durations

    @property
    def step_durations(self) -> Histogram:
        return self.series.step_durations

    @property
    def coalesced(self) -> Counter:
        return self.series.coalesced

    def job_added(self, name: str, watched: Watched) -> None:
        """A job is served (at start, or added by a reload): its series exist from now on, at 0 (``rate()`` and
        ``increase()`` need a 0), and its last success is looked up once (its state, else the history)."""
        if name not in self._added:
            self._added.append(name)
            if self._series is not None:
                self._series.zero(name)
        if self.last_success.get(name) is None:
            self.last_success[name] = last_success(watched.state.last_run, self._history, job=name)

    def count_streams(self, open_streams: Callable[[], int], log_streams: Callable[[], int] = lambda: 0) -> None:
        """Where the numbers of open event streams and log streams come from (they belong to the web app, not
        the service)."""
        self._sse_clients = open_streams
        self._log_streams = log_streams

    def render(self) -> bytes:
        """The exposition text; it costs the same whatever the history holds (nothing here reads it)."""
        from prometheus_client.exposition import generate_latest

        return generate_latest(self.registry)

    # ------------------------------------------------------------------------------------- RunListener
    def run_started(self, event: RunStarted) -> None:
        run = event.run
        self._watched[run.job] = run.run_id
        if run.trigger_count > 1:
            self.coalesced.labels(run.job).inc(run.trigger_count - 1)

    def run_finished(self, event: RunFinished) -> None:
        run = event.run
        self.runs.labels(run.job, run.source.value, run.status.value).inc()
        if self._watched.pop(run.job, None) == run.run_id and run.duration_seconds is not None:
            self.durations.labels(run.job, run.status.value).observe(run.duration_seconds)
        if run.status is RunStatus.COMPLETED and run.finished_at is not None:
            self.last_success[run.job] = run.finished_at
        self._observe_steps(run.job, event.steps, completed=run.status is RunStatus.COMPLETED)

    def _observe_steps(self, job: str, steps: tuple[Step, ...], *, completed: bool) -> None:
        # The step a run failed or was cancelled in was cut short: its time says nothing of how long it takes.
        for step in steps if completed else steps[:-1]:
            duration = step.duration_seconds
            if duration is not None:
                self.step_durations.labels(job, self._step_label(job, step.name)).observe(duration)

    def _step_label(self, job: str, name: str) -> str:
        names = self._step_names.setdefault(job, set())
        if name not in names and len(names) < MAX_STEP_NAMES:
            names.add(name)
        return name if name in names else OTHER_STEPS

    # ----------------------------------------------------------------------------------------- scraping
    def live(self) -> Iterator[Metric]:
        """The gauges (and the trigger counter the runners keep) of every job served now, and the service's."""
        families = _JobFamilies()
        for name, job in self._jobs().items():
            self._live_job(families, name, job)
        yield from families.made()
        yield _gauge("snapshot_sse_clients", "Open event streams (browsers showing the page).", self._sse_clients())
        yield _gauge("snapshot_log_streams", "Open live log streams (a run's log, followed).", self._log_streams())

    def _live_job(self, families: _JobFamilies, name: str, job: Watched) -> None:
        status = job.status()
        state = job.state
        last = state.last_run
        add = partial(families.gauge, name)
        add("snapshot_running", "1 while a run is going on.", job.running)
        add("snapshot_paused", "1 while the automatic schedule is paused.", bool(status.get("paused")))
        progress = status.get("progress") or {}
        add(
            "snapshot_progress_percent",
            "Progress of the running run (of the last run while idle), 0-100.",
            _number(progress.get("progress")),
        )
        add("snapshot_pending_triggers", "Triggers waiting for the next run.", state.pending_count)
        add("snapshot_run_queued", "1 while a run is owed (a follow-up to the running one).", state.pending_count > 0)
        add(
            "snapshot_interval_seconds",
            "Time between automatic runs; 0 for a job on a calendar or on triggers only.",
            _number(status.get("intervalMinutes")) * 60,
        )
        add(
            "snapshot_next_run_timestamp_seconds",
            "When the next automatic run is due (Unix time); 0 for a job with no automatic runs.",
            due.timestamp() if (due := job.next_run_at()) is not None else 0,
        )
        success = self.last_success.get(name)
        add(
            "snapshot_last_success_timestamp_seconds",
            "When the last completed run ended (Unix time); 0 if none is known.",
            success.timestamp() if success else 0,
        )
        add(
            "snapshot_last_run_end_timestamp_seconds",
            "When the last run ended, whatever its outcome (Unix time); 0 if none did.",
            last.finished_at.timestamp() if last and last.finished_at else 0,
        )
        if last is not None:
            completed = last.status is RunStatus.COMPLETED
            add("snapshot_last_run_success", "1 if the last run that ended completed, else 0.", completed)
        if state.current is not None:
            add(
                "snapshot_current_run_start_timestamp_seconds",
                "When the running run started (Unix time); absent while idle.",
                state.current.started_at.timestamp(),
            )
        received = job.triggers_received()
        for source in Source:
            families.counter(
                "snapshot_triggers",
                "Triggers received, by job and source (each counts once, coalesced or not).",
                (name, source.value),
                received.get(source, 0),
            )


class _Series:
    """The registry and the series fed by events (the live state is read by a collector at each scrape)."""

    def __init__(self, metrics: Metrics) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.runs = Counter(
            "snapshot_runs",
            "Runs that ended, by job, by the source of the trigger that started them and by outcome.",
            ("job", "source", "outcome"),
            registry=self.registry,
        )
        self.durations = Histogram(
            "snapshot_run_duration_seconds",
            "How long runs took, from start to end, by job and outcome.",
            ("job", "outcome"),
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.step_durations = Histogram(
            "snapshot_step_duration_seconds",
            f"How long steps took, by job and step name (each job's first {MAX_STEP_NAMES} names seen; later "
            f"ones: {OTHER_STEPS}).",
            ("job", "step"),
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.coalesced = Counter(
            "snapshot_triggers_coalesced",
            "Triggers absorbed into a run beyond the first (they caused no run of their own), by job.",
            ("job",),
            registry=self.registry,
        )
        self.registry.register(_LiveCollector(metrics))

    def zero(self, name: str) -> None:
        """Job ``name``'s series, at 0."""
        self.coalesced.labels(name)
        for outcome in OUTCOMES:
            self.durations.labels(name, outcome.value)
            for source in Source:
                self.runs.labels(name, source.value, outcome.value)


class _JobFamilies:
    """The families of one scrape, in the order first met, each with a sample per job."""

    def __init__(self) -> None:
        self._families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}

    def gauge(self, job: str, name: str, documentation: str, value: float | bool) -> None:
        from prometheus_client.core import GaugeMetricFamily  # imported by then: a scrape made the registry

        family = self._families.get(name)
        if family is None:
            family = self._families[name] = GaugeMetricFamily(name, documentation, labels=("job",))
        family.add_metric((job,), float(value))

    def counter(self, name: str, documentation: str, labels: tuple[str, str], value: float) -> None:
        from prometheus_client.core import CounterMetricFamily

        family = self._families.get(name)
        if family is None:
            family = self._families[name] = CounterMetricFamily(name, documentation, labels=("job", "source"))
        family.add_metric(labels, value)

    def made(self) -> Iterator[Metric]:
        yield from self._families.values()


class _LiveCollector:
    """No ``describe``: the registry then asks for nothing at registration, when the service is half made."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.live()


def _gauge(name: str, documentation: str, value: float | bool) -> GaugeMetricFamily:
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(name, documentation, value=float(value))


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def last_success(last_run: RunRecord | None, history: RunHistory, *, job: str | None = None) -> datetime | None:
    """When the newest completed run (of ``job``; ``None``: of any) ended: the state's last run if it completed,
    else the history's newest."""
    if last_run is not None and last_run.status is RunStatus.COMPLETED and last_run.finished_at is not None:
        return last_run.finished_at
    try:
        found = history.newest(1, status=RunStatus.COMPLETED, within=MAX_HISTORY_SCAN * MAX_PAGE, job=job)
    except StoreUnavailable as exc:
        # The gauge then says 0 ("none known"), which an alert takes as stale: better than a guess.
        log.error("cannot read the last success from the run history %s: %s", history.location, exc)
        return None
    return found[0].finished_at if found else None
