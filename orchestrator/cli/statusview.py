"""What ``status`` prints, for people: one job in full (:func:`format_status`), or every job in a line each and
the last runs of them all (:func:`format_overview`). Pure: documents in, text out; every value from the service
is printed with its control characters shown (:func:`printed`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from orchestrator.core.printable import first_line, printable
from orchestrator.core.records import DEFAULT_JOB


def format_status(
    doc: dict[str, Any], source: str, runs: Sequence[dict[str, Any]] = (), *, job: str | None = None
) -> str:
    """One job's status: what runs now, what comes next, and the last runs (newest first); ``job``: the job
    asked for by name (said on a line of its own)."""
    progress = doc.get("progress") or {}
    lines = [f"Source:   {source}"]
    if job is not None:
        lines.append(f"Job:      {job}")
    noun = "snapshot" if (doc.get("job") or DEFAULT_JOB) == DEFAULT_JOB else "run"
    where = where_text(doc)
    paused = doc.get("paused") or None
    step = [f"Step:     {text}"] if (text := step_text(progress)) else []
    if doc.get("stopping"):
        lines += [f"State:    stopping ({doc['stopping']}), {where}", *step]
    elif doc.get("running"):
        lines += [f"State:    running, {where}", *step]
    elif doc.get("serverUp") is False:
        lines.append("State:    service not running")
    elif doc.get("waiting"):
        lines.append("State:    waiting for a run slot (as many runs of other jobs go on as max-parallel allows)")
    elif paused:
        lines.append("State:    idle")
    elif doc.get("nextRunAt") is None:
        lines.append("State:    idle; no schedule, runs when triggered")
    else:
        lines.append(f"State:    idle, next {noun} in {until_text(doc)} ({doc.get('nextRunAt')})")
    if isinstance(paused, dict):
        why = f": {paused['reason']}" if paused.get("reason") else ""
        lines.append(f"Paused:   since {paused.get('since')}{why} (automatic {noun}s off; resume to restart them)")
    for check in doc.get("checks") or []:
        if isinstance(check, dict):
            lines.append(f"Warning:  {check.get('message')}")
    if doc.get("pendingTriggers"):
        lines.append(f"Queued:   {doc['pendingTriggers']} trigger(s) waiting")
    if runs:
        lines.append("Last runs:")
        lines += [run_line(run) for run in runs]
        return printed(lines)
    last = doc.get("lastRun") or {}
    if last:
        lines.append(f"Last run: {last.get('status')} at {last.get('startedAt')}, trigger {last.get('trigger')}")
        if last.get("error"):
            lines.append(f"Error:    {first_line(str(last['error']))}")
    else:
        lines.append(f"Last run: {doc.get('lastRunAt') or 'never'}")
    return printed(lines)


def format_overview(
    docs: Sequence[dict[str, Any]], default: str | None, source: str, runs: Sequence[dict[str, Any]] = ()
) -> str:
    """Every job in one line (``docs``: their status documents, in the service's order), then the last runs of
    them all, newest first, each naming its job; ``default``: the default job, if known."""
    names = [str(doc.get("job") or "?") for doc in docs]
    width = max((len(name) for name in names), default=0)
    count = f"{len(docs)} job{'' if len(docs) == 1 else 's'}"
    lines = [f"Source:   {source}", f"Jobs:     {count}" + (f", the default {default}" if default else "")]
    lines += [f"  {name:<{width}}  {job_state(doc)}" for name, doc in zip(names, docs, strict=True)]
    if runs:
        job_width = max(len(str(run.get("job") or "?")) for run in runs)
        lines.append("Last runs:")
        lines += [run_line(run, job_width=job_width) for run in runs]
    return printed(lines)


def job_state(doc: dict[str, Any]) -> str:
    """A job's state in one line: running (where, the step) or what comes next, then a pause, queued triggers,
    the last run and the first warning, each when there is one."""
    progress = doc.get("progress") or {}
    paused = doc.get("paused") or None
    if doc.get("stopping"):
        parts = [f"stopping ({doc['stopping']}), {where_text(doc)}"]
    elif doc.get("running"):
        step = step_text(progress)
        parts = [f"running, {where_text(doc)}" + (f": {step}" if step else "")]
    elif doc.get("serverUp") is False:
        parts = ["service not running"]
    elif doc.get("waiting"):
        parts = ["waiting for a run slot"]
    elif paused:
        parts = ["idle"]
    elif doc.get("nextRunAt") is None:
        parts = ["idle, runs when triggered"]
    else:
        parts = [f"idle, next run in {until_text(doc)} ({doc.get('nextRunAt')})"]
    if isinstance(paused, dict):
        parts.append(f"paused since {paused.get('since')}" + (f": {paused['reason']}" if paused.get("reason") else ""))
    if doc.get("pendingTriggers"):
        parts.append(f"{doc['pendingTriggers']} trigger(s) queued")
    last = doc.get("lastRun") or {}
    if isinstance(last, dict) and last:
        parts.append(f"last run {last.get('status')} at {last.get('startedAt')}")
    checks = [check for check in doc.get("checks") or [] if isinstance(check, dict)]
    if checks:
        more = f" (and {len(checks) - 1} more)" if len(checks) > 1 else ""
        parts.append(f"warning: {checks[0].get('message')}{more}")
    return "; ".join(parts)


def run_line(run: dict[str, Any], *, job_width: int = 0) -> str:
    """A run of the last runs: start, outcome, duration, trigger (and reason), first line of the error; with
    ``job_width``, its job after the start, in a column that wide."""
    from orchestrator.cli.follow import duration_text

    trigger = str(run.get("trigger", "?"))
    if (run.get("triggerCount") or 1) > 1:
        trigger += f" + {run['triggerCount'] - 1} more"
    reason = f" ({run['reason']})" if run.get("reason") else ""
    error = first_line(str(run.get("error") or ""))
    took = duration_text(run.get("durationSeconds")) if run.get("finishedAt") else "..."
    job = f"  {run.get('job') or '?':<{job_width}}" if job_width else ""
    line = f"  {run.get('startedAt')}{job}  {run.get('status', '?'):<9} {took:>8}  {trigger}{reason}"
    return line + (f" - {error}" if error else "")


def where_text(doc: dict[str, Any]) -> str:
    """How far the running run is: ``45%, about 6:10 left``."""
    from orchestrator.cli.follow import duration_text

    where = f"{(doc.get('progress') or {}).get('progress', 0)}%"
    eta = doc.get("eta") or {}
    if isinstance(eta, dict) and eta.get("secondsLeft") is not None:
        where += f", about {duration_text(eta['secondsLeft'])} left"
    return where


def step_text(progress: dict[str, Any]) -> str:
    """The current step with what it is doing now and its counts: ``Fetching GitHub PRs — repo 5/15: octo/api
    (5/15)``; each part only when the job reported it."""
    text = str(progress.get("step") or "")
    if progress.get("detail"):
        text += f" \u2014 {progress['detail']}"
    done, total = progress.get("done"), progress.get("total")
    if done is not None:
        text += f" ({done}/{total})" if total is not None else f" ({done})"
    return text


def printed(lines: list[str]) -> str:
    """The lines, each printable: every value in them (step, error, reason, check message, run id) comes from the
    service, and much of it from outsiders."""
    return "\n".join(printable(line) for line in lines)


def until_text(doc: dict[str, Any]) -> str:
    """``3 s`` under a minute (``secondsUntilNextRun``), else ``12 min`` (whole minutes, rounded up)."""
    seconds = doc.get("secondsUntilNextRun")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and 0 <= seconds <= 59:
        return f"{math.ceil(seconds)} s"
    return f"{doc.get('minutesUntilNextRun')} min"
