"""``GET /metrics`` of a service with several jobs: every job's series carry its ``job`` label, the service's own
none; the jobs are read at each scrape, so a reload's added job shows up and a removed one's gauges go. In
process on a fake clock (the other jobs never run: no process starts), then a real service with a jobs file."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus, Source, Trigger, utcnow
from orchestrator.core.records import RunRecord
from orchestrator.core.runevents import RunFinished, RunStarted
from orchestrator.core.steps import Step
from orchestrator.sources.trigger_files import write_trigger_file
from tests.fakes import T0, ScriptedJob, Services, ended, jobs_orchestrator, minutes
from tests.ops.test_metrics import Samples, parse, value
from tests.support import PYTHON, ServiceProcess, saved_state

JOBS = """
[jobs.snapshot]
command = "true"
interval = 30
[jobs.report]
command = "true"
[jobs.nightly]
command = "true"
cron = "0 3 * * *"
timezone = "UTC"
paused = true
"""


def series(samples: Samples, name: str) -> dict[str, float]:
    """``name``'s value for each job."""
    return {dict(labels)["job"]: sample for (each, labels), sample in samples.items() if each == name}


async def test_every_job_has_its_series_and_the_service_its_own(
    tmp_path: Path, clock: FakeClock, job: ScriptedJob, services: Services
) -> None:
    service = await services.started(jobs_orchestrator(tmp_path, clock, job, JOBS))
    first = await job.next_start()  # the default job's start-up run
    samples = parse(service.metrics.render().decode())
    assert series(samples, "snapshot_running") == {"snapshot": 1, "report": 0, "nightly": 0}
    assert series(samples, "snapshot_paused") == {"snapshot": 0, "report": 0, "nightly": 1}
    assert series(samples, "snapshot_interval_seconds") == {"snapshot": 1800, "report": 0, "nightly": 0}
    next_runs = series(samples, "snapshot_next_run_timestamp_seconds")
    assert next_runs["report"] == 0, "a job on triggers only has no next run"
    assert next_runs["nightly"] == T0.replace(hour=3).timestamp() + 86400  # tomorrow 03:00 UTC
    assert value(samples, "snapshot_runs_total", job="report", source="after", outcome="completed") == 0
    assert value(samples, "snapshot_run_duration_seconds_count", job="nightly", outcome="error") == 0
    assert value(samples, "snapshot_triggers_coalesced_total", job="report") == 0
    assert value(samples, "snapshot_triggers_total", job="snapshot", source="startup") == 1
    assert value(samples, "snapshot_triggers_total", job="nightly", source="startup") == 0
    assert ("snapshot_sse_clients", ()) in samples and ("snapshot_log_streams", ()) in samples
    assert all(service.metrics in service.table.listeners[name] for name in ("snapshot", "report", "nightly"))

    clock.advance(minutes(2))
    first.finish()
    await ended(service, first)
    done = parse(service.metrics.render().decode())
    assert value(done, "snapshot_runs_total", source="startup", outcome="completed") == 1
    assert series(done, "snapshot_last_success_timestamp_seconds") == {
        "snapshot": (T0 + minutes(2)).timestamp(),
        "report": 0,
        "nightly": 0,
    }


def test_a_run_is_counted_as_its_jobs(tmp_path: Path, clock: FakeClock, job: ScriptedJob) -> None:
    """What every job's runner tells the one listener: each run says its job, and is counted under it."""
    metrics = jobs_orchestrator(tmp_path, clock, job, JOBS).metrics
    triggers = tuple(Trigger(Source.AFTER, T0, f"after snapshot {n}") for n in range(3))
    run = RunRecord("r1", triggers, T0, trigger_count=3, job="report")
    metrics.run_started(RunStarted(run))
    ended_run = RunRecord("r1", triggers, T0, status=RunStatus.ERROR, finished_at=T0 + minutes(1), job="report")
    metrics.run_finished(RunFinished(ended_run, (Step("fetch", T0, T0 + minutes(1)), Step("write", T0, None))))
    samples = parse(metrics.render().decode())
    assert value(samples, "snapshot_runs_total", job="report", source="after", outcome="error") == 1
    assert value(samples, "snapshot_runs_total", job="snapshot", source="after", outcome="error") == 0
    assert value(samples, "snapshot_run_duration_seconds_sum", job="report", outcome="error") == 60
    assert value(samples, "snapshot_triggers_coalesced_total", job="report") == 2
    assert value(samples, "snapshot_step_duration_seconds_count", job="report", step="fetch") == 1


async def test_a_reload_adds_a_jobs_series_and_takes_a_removed_jobs_gauges(
    tmp_path: Path, clock: FakeClock, job: ScriptedJob, services: Services
) -> None:
    changed = JOBS.replace("[jobs.report]", "[jobs.backup]")
    service = await services.started(jobs_orchestrator(tmp_path, clock, job, JOBS, reload_to=changed))
    await job.next_start()
    plan = await service.reload()
    assert (plan.added, plan.removed) == (("backup",), ("report",))
    await service.table.settled()
    samples = parse(service.metrics.render().decode())
    assert series(samples, "snapshot_running") == {"snapshot": 1, "nightly": 0, "backup": 0}
    assert value(samples, "snapshot_runs_total", job="backup", source="http", outcome="completed") == 0
    # A counter keeps what it counted until the service restarts, as counters do.
    assert value(samples, "snapshot_runs_total", job="report", source="http", outcome="completed") == 0


# ------------------------------------------------------------------------------------------ real service
@pytest.mark.process
def test_a_real_services_jobs_are_counted_apart(tmp_path: Path, service_factory: Callable[..., ServiceProcess]) -> None:
    command = json.dumps([PYTHON, "-c", "print('PROGRESS 50 Halfway', flush=True)"])
    path = tmp_path / "jobs.toml"
    path.write_text(f"[defaults]\ncommand = {command}\n[jobs.snapshot]\ninterval = 600\n[jobs.report]\n")
    service = service_factory("--jobs", str(path))
    write_trigger_file(service.triggers_dir / "report", "from the test", utcnow())
    service.wait_for_log("completed in", 20, count=2)  # the default job's start-up run, and report's
    assert saved_state(service.data_dir, "report")["lastRun"]["trigger"] == "file"
    with urllib.request.urlopen(service.url + "/metrics", timeout=10) as response:
        samples = parse(response.read().decode())
    assert value(samples, "snapshot_runs_total", job="report", source="file", outcome="completed") == 1
    assert value(samples, "snapshot_runs_total", job="report", source="startup", outcome="completed") == 0
    assert value(samples, "snapshot_runs_total", job="snapshot", source="startup", outcome="completed") == 1
    assert value(samples, "snapshot_step_duration_seconds_count", job="report", step="Halfway") == 1
    assert series(samples, "snapshot_interval_seconds") == {"snapshot": 36000, "report": 0}
