"""The lives of the service in the crash suites (tests/faults/crashkit.py has their parts): lives killed at
chosen kinds of instants while a round's load goes on, then a last life that runs everything owed and stops as
asked; and the promises every job keeps across them, checked at the end from the runs, the journal of the
jobs, the state file and the machine's processes."""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from tests.faults.crashkit import (
    Killer,
    Load,
    Round,
    all_runs,
    drop_files,
    post_triggers,
    processes_of_service,
    started_runs,
)
from tests.faults.harness import until_consumed
from tests.support import ServiceProcess, saved_state, sse_stream, start_service

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "14"))
"""Kills per seed (each a start, some work, a kill and a restart: about a second)."""
SEEDS = [int(s) for s in os.environ.get("CRASH_SEEDS", "1,2").split(",")]


def start(root: Path, args: tuple[str, ...], journal: Path, orphans: list[str], when: str) -> ServiceProcess:
    """A life of the service, once it answers; any process of an earlier run still alive then is an orphan."""
    before = started_runs(journal)
    service = start_service(root, *args)
    service.wait_ready()
    # Whatever was left of an earlier run is stopped before the service answers anything.
    left = {pid: run for pid, run in processes_of_service(service.data_dir).items() if run in before}
    orphans += [f"{when}: pid {pid} of run {run}" for pid, run in left.items()]
    return service


def killed_life(service: ServiceProcess, this: Round, load: Load, rng: random.Random, journal: Path) -> None:
    """Send this round's load while the killer waits for its moment, and wait for the kill."""
    killer = Killer(service, this.moment, rng, journal)
    stop = threading.Event()
    workers = []
    for job, folder in load.folders.items():
        names = [f"file-{job}-{this.number}-{n}" for n in range(rng.randint(0, load.files))]
        this.files[job] = []
        # A generator of its own: the seed's plan (moments, counts, names) does not hang on the threads' pace.
        args = (service.triggers_dir / folder, names, this.files[job], random.Random(rng.random()), stop)
        workers.append(threading.Thread(target=drop_files, args=args))
    for job, path in load.posts_to.items():
        reasons = [f"http-{job}-{this.number}-{n}" for n in range(rng.randint(0, load.posts))]
        this.acked_http[job] = []
        workers.append(
            threading.Thread(target=post_triggers, args=(service, path, reasons, this.acked_http[job], killer))
        )
    for worker in workers:
        worker.start()
    killer.killed.wait(timeout=10)
    stop.set()
    for worker in workers:
        worker.join(timeout=10)
    killer.close()
    this.on_time = killer.on_time
    assert service.proc.wait(timeout=10) == -9


def crash_lives(
    root: Path, args: tuple[str, ...], *, load: Load, moments: tuple[str, ...], seed: int, journal: Path
) -> tuple[list[Round], list[str]]:
    """:data:`ROUNDS` lives of the service, each killed at an instant of a kind drawn from ``moments``; the
    rounds, and the processes of earlier runs found alive once a restarted service answered."""
    rng = random.Random(seed)
    rounds: list[Round] = []
    orphans: list[str] = []
    for number in range(ROUNDS):
        service = start(root, args, journal, orphans, f"round {number}")
        this = Round(number, rng.choice(moments))
        killed_life(service, this, load, rng, journal)
        rounds.append(this)
    return rounds, orphans


async def last_life(
    root: Path, args: tuple[str, ...], load: Load, journal: Path, orphans: list[str]
) -> tuple[ServiceProcess, dict[str, list[dict[str, Any]]]]:
    """A last life, not killed: it runs everything still owed, then stops as asked. Every job's runs."""
    service = start(root, args, journal, orphans, "last start")
    for folder in load.folders.values():
        await until_consumed(service.triggers_dir / folder, timeout=20)
    jobs = service.get_json("/api/jobs")
    await until_idle(service, {doc["job"] for doc in jobs["jobs"]})
    apis = {job: "/api/snapshot" if job == jobs["defaultJob"] else f"/api/jobs/{job}" for job in load.posts_to}
    runs = {job: all_runs(service, api) for job, api in apis.items()}
    assert service.stop() == 0, service.logs()
    return service, runs


async def lives_and_breaks(
    root: Path, args: tuple[str, ...], *, load: Load, moments: tuple[str, ...], seed: int, journal: Path
) -> tuple[dict[str, list[dict[str, Any]]], str, dict[str, Any]]:
    """A seed's killed lives and its last one: every job's runs, the summary (printed), and every promise the
    service broke (``CRASH_DUMP=FILE``: every run and round written there, as JSON, for a look at a failure)."""
    rounds, orphans = crash_lives(root, args, load=load, moments=moments, seed=seed, journal=journal)
    service, runs = await last_life(root, args, load, journal, orphans)
    told = summary(seed, rounds, runs)
    print(f"\n{told}")
    if os.environ.get("CRASH_DUMP"):
        Path(os.environ["CRASH_DUMP"]).write_text(json.dumps({"runs": runs, "rounds": [vars(r) for r in rounds]}))
    return runs, told, service_breaks(service, runs, rounds, journal, orphans)


def idle(doc: dict[str, Any]) -> bool:
    return not doc["running"] and not doc["waiting"] and doc["pendingTriggers"] == 0


async def until_idle(service: ServiceProcess, jobs: set[str], timeout: float = 30) -> None:
    """Until every job is idle at once, as the one stream of every job tells, and as ``/api/jobs`` confirms."""
    latest: dict[str, dict[str, Any]] = {}
    try:
        async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
            async for event in sse_stream(session, service.url + "/api/events"):
                if event.event != "status":
                    continue
                doc = event.json()
                latest[doc["job"]] = doc
                if set(latest) == jobs and all(map(idle, latest.values())):
                    documents = (await asyncio.to_thread(service.get_json, "/api/jobs"))["jobs"]
                    if all(map(idle, documents)):
                        return
    except TimeoutError:
        pass
    busy = {job: (doc["running"], doc["waiting"], doc["pendingTriggers"]) for job, doc in latest.items()}
    raise AssertionError(f"not every job idle within {timeout}s: (running, waiting, pending) {busy}")


def journal_breaks(journal: Path) -> dict[str, list[str]]:
    lines = journal.read_text().splitlines()
    return {
        "two runs of one job at once": [line for line in lines if line.startswith("overlap ")],
        "more runs of different jobs at once than max-parallel": [line for line in lines if line.startswith("crowd ")],
    }


def job_breaks(job: str, runs: list[dict[str, Any]], promised: list[str], state: dict[str, Any]) -> dict[str, list]:
    """The promises about one job's runs that broke (empty lists: none); ``state``: its state once stopped."""
    interrupted = [r for r in runs if (r["error"] or "").startswith("interrupted")]
    retries = {run["runId"]: [r for r in runs if r.get("retryOf") == run["runId"]] for run in interrupted}
    # Every acknowledged trigger ran: in a run that completed, or it was in two runs killed mid-way (it is
    # retried once, not for ever).
    completed = {t["reason"] for r in runs if r["status"] == "completed" for t in r["triggers"]}
    killed_in = Counter(t["reason"] for r in interrupted for t in r["triggers"])
    ran = completed | {reason for reason, times in killed_in.items() if times >= 2}
    newest = max(runs, key=lambda r: r["startedAt"], default=None)
    last = state.get("lastRun")
    agree = (newest is None and last is None) or (
        newest is not None
        and last is not None
        and (newest["runId"], newest["status"]) == (last["runId"], last["status"])
    )
    saturated = [r["runId"] for r in runs if r["triggerCount"] > len(r["triggers"])]
    assert not saturated, f"{job}: runs with more triggers than they name (the test cannot check them): {saturated}"
    return {
        f"{job}: runs still 'running' in the history": [r["runId"] for r in runs if r["status"] == "running"],
        f"{job}: runs killed mid-way and not retried once": [
            run["runId"]
            for run in interrupted
            if run.get("retryOf") is None
            and [r.get("reason", "").startswith(f"retry of {run['runId']}") for r in retries[run["runId"]]] != [True]
        ],
        f"{job}: acknowledged triggers that never ran": [reason for reason in promised if reason not in ran],
        f"{job}: the state's last run is not the history's newest": [] if agree else [f"{last} vs {newest}"],
        f"{job}: a run in flight in the state once stopped": [state["current"]] if state.get("current") else [],
    }


def service_breaks(
    service: ServiceProcess,
    runs: dict[str, list[dict[str, Any]]],
    rounds: list[Round],
    journal: Path,
    orphans: list[str],
) -> dict[str, Any]:
    """Every promise of every job that broke, by promise (empty: none)."""
    broken: dict[str, Any] = {"processes of earlier runs alive once a restarted service answered": orphans}
    broken |= journal_breaks(journal)
    broken["jobs alive after the last stop"] = processes_of_service(service.data_dir)
    for job, its in runs.items():
        promised = [reason for this in rounds for reason in this.promised(job)]
        broken |= job_breaks(job, its, promised, saved_state(service.data_dir, job))
    return {promise: found for promise, found in broken.items() if found}


def summary(seed: int, rounds: list[Round], runs: dict[str, list[dict[str, Any]]]) -> str:
    moments = Counter(this.moment for this in rounds)
    counts = {job: len(its) for job, its in runs.items()}
    interrupted = sum((r["error"] or "").startswith("interrupted") for its in runs.values() for r in its)
    promised = sum(len(this.promised(job)) for this in rounds for job in runs)
    return (
        f"seed {seed}: {len(rounds)} kills ({dict(moments)}; {sum(r.on_time for r in rounds)} at their moment), "
        f"runs {counts}, {interrupted} interrupted, "
        f"{promised} triggers promised"
    )


def verdict(summary: str, failures: Mapping[str, Any]) -> str:
    return f"{summary}; broken:\n" + "\n".join(
        f"- {promise} ({len(found)}): {list(found)[:8]}" for promise, found in failures.items()
    )
