"""Runs in flight of jobs no longer in the jobs file: a service that died during a run of a job, then started
with a file that no longer names it, has no unit for that job. Its run is closed here all the same (recorded as
interrupted, its job's process group stopped), as the job's own runner would have at its start: no job runs
unsupervised, beside max-parallel, or survives the service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from datetime import timedelta
from pathlib import Path

from orchestrator.core.clock import Clock
from orchestrator.core.schedule import OnDemand
from orchestrator.job.subprocessjob import SubprocessJob
from orchestrator.live.progress import ProgressFile
from orchestrator.runner.runner import Runner
from orchestrator.store import JobStates, RunHistory
from orchestrator.store.runlogs import RunLogs

log = logging.getLogger(__name__)


async def close_orphans(
    states: JobStates,
    configured: Collection[str],
    *,
    clock: Clock,
    history: RunHistory,
    logs: RunLogs,
    data_dir: Path,
    kill_grace: float,
) -> None:
    """Close the run in flight, and stop the leftover processes, of every job the state file holds that is not
    ``configured``. Its pending triggers stay in the state file, should the job come back."""
    for name in sorted(states.jobs() - set(configured)):
        store = states.job(name)
        state = store.load()
        if state.current is None and not state.leftovers:
            continue
        log.warning("job %s is not in the jobs file, but a run of it was in flight: closing it", name)
        runner = Runner(
            queue=asyncio.Queue(),
            job=SubprocessJob(("true",)),  # never run: the runner only recovers
            clock=clock,
            schedule=OnDemand(timedelta(0)),
            store=store,
            progress_file=ProgressFile(data_dir / f"{name}_progress.json"),
            kill_grace=kill_grace,
            history=history,
            logs=logs,
            name=name,
        )
        runner.recover()
        await runner.stop_leftover()
