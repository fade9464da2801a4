"""A run's steps: what a job reports (:class:`StepReport`, cut down to sane sizes), what a run keeps of each step
(:class:`Step`), and the pure bookkeeping that turns a stream of reports into steps (:class:`StepTracker`).

A report names the step the job is in, optionally a detail that changes often ("repo 5/15: octo/api") and counts
inside the step. A new name starts a new step; the same name (or none) goes on with the current one. Only the last
detail of a step is kept: a job may report ten thousand details a second, a run keeps one per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from orchestrator.core.events import iso, parse_iso

STARTING = "Starting..."
"""The service's own first step of every run, before the job's first report: it measures the job's start-up."""
MAX_STEPS = 1000
"""Steps one run keeps; later steps are folded into the last one, renamed :data:`MORE_STEPS`."""
MORE_STEPS = "(more steps)"
MAX_NAME_CHARS = 200
MAX_DETAIL_CHARS = 500
MAX_COUNT = 10**12
"""Counts above this are a bug in the job, not a number of repositories."""
KNOWN_KEYS = frozenset({"percent", "step", "detail", "done", "total"})


@dataclass(frozen=True, slots=True)
class StepReport:
    """One report of the job, already cut down: ``None`` is "not said" (the percent or step stays as it was)."""

    percent: float | None = None
    step: str | None = None
    detail: str | None = None
    done: int | None = None
    total: int | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    """A report and what had to be cut or dropped from it to make it one (short phrases, for one log line)."""

    report: StepReport
    problems: tuple[str, ...] = ()


def cut_name(text: str) -> tuple[str, bool]:
    """A step name fit to show and to key statistics by: one line, at most :data:`MAX_NAME_CHARS`."""
    return _cut(text, MAX_NAME_CHARS)


def cut_detail(text: str) -> tuple[str, bool]:
    return _cut(text, MAX_DETAIL_CHARS)


def _cut(text: str, limit: int) -> tuple[str, bool]:
    one_line = " ".join(text.split()) if ("\n" in text or "\r" in text or "\t" in text) else text.strip()
    return (one_line[:limit], True) if len(one_line) > limit else (one_line, False)


def from_fields(doc: dict[str, Any], *, percent_key: str) -> Parsed:
    """A report from a JSON object: the line form's (``percent``) or the progress file's (``progress``). Bad
    values are dropped, long texts cut; each kind of problem is named once in ``problems``."""
    problems: list[str] = []
    percent = _percent(doc.get(percent_key), percent_key, problems)
    step = _text(doc.get("step"), "step", cut_name, problems)
    detail = _text(doc.get("detail"), "detail", cut_detail, problems)
    done = _count(doc.get("done"), "done", problems)
    total = _count(doc.get("total"), "total", problems)
    if done is not None and total is not None and done > total:
        problems.append(f"done {done} is more than total {total}: counts dropped")
        done = total = None
    return Parsed(StepReport(percent, step or None, detail, done, total), tuple(problems))


def unknown_keys(doc: dict[str, Any], known: frozenset[str]) -> str | None:
    """The phrase for keys a report should not have, or ``None``."""
    unknown = sorted(str(key)[:40] for key in doc if key not in known)
    if not unknown:
        return None
    shown = ", ".join(repr(key) for key in unknown[:5])
    return f"unknown key{'s' if len(unknown) > 1 else ''} {shown}{' ...' if len(unknown) > 5 else ''} ignored"


def _percent(value: object, key: str, problems: list[str]) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.append(f"{key} is not a number: dropped")
        return None
    return min(100.0, max(0.0, float(value)))


def _text(value: object, key: str, cut: Callable[[str], tuple[str, bool]], problems: list[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(f"{key} is not a string: dropped")
        return None
    text, was_cut = cut(value)
    if was_cut:
        problems.append(f"{key} of {len(value)} characters cut")
    return text


def _count(value: object, key: str, problems: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        problems.append(f"{key} is not a count from 0 to {MAX_COUNT}: dropped")
        return None
    return value


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a run as the run keeps it. ``ended_at`` is ``None`` while it is the running run's current step."""

    name: str
    started_at: datetime
    ended_at: datetime | None = None
    percent_start: float = 0
    percent_end: float = 0
    detail: str | None = None
    done: int | None = None
    total: int | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.ended_at is None:
            return None
        return round(max(0.0, (self.ended_at - self.started_at).total_seconds()), 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "startedAt": iso(self.started_at),
            "endedAt": iso(self.ended_at),
            "durationSeconds": self.duration_seconds,
            "percentStart": _tidy(self.percent_start),
            "percentEnd": _tidy(self.percent_end),
            "detail": self.detail,
            "done": self.done,
            "total": self.total,
        }

    @classmethod
    def from_json(cls, doc: object) -> Step | None:
        """A step as written by :meth:`to_json`; ``None`` for anything else (a damaged row is skipped, not fatal)."""
        if not isinstance(doc, dict):
            return None
        name, started_at = doc.get("name"), parse_iso(doc.get("startedAt"))
        if not isinstance(name, str) or started_at is None:
            return None
        parsed = from_fields(doc, percent_key="percentEnd").report
        return cls(
            name=name,
            started_at=started_at,
            ended_at=parse_iso(doc.get("endedAt")),
            percent_start=_percent(doc.get("percentStart"), "percentStart", []) or 0,
            percent_end=parsed.percent or 0,
            detail=parsed.detail,
            done=parsed.done,
            total=parsed.total,
        )


def steps_to_json(steps: tuple[Step, ...]) -> list[dict[str, Any]]:
    return [step.to_json() for step in steps]


def steps_from_json(doc: object) -> tuple[Step, ...]:
    if not isinstance(doc, list):
        return ()
    found = (Step.from_json(item) for item in doc)
    return tuple(step for step in found if step is not None)


class StepTracker:
    """The steps of the running run, from its reports. Pure: every call takes ``now``.

    ``begin`` starts a run at its first step (the service's own "Starting"); ``report`` applies one report and
    says whether a new step began; ``finish`` closes the current step and hands the run's steps over."""

    def __init__(self) -> None:
        self._done: list[Step] = []
        self._current: Step | None = None
        self._heard = False
        """Whether the job said anything: a run whose job never reported has no steps (not one long "Starting")."""
        self.folded = False
        """Whether the run reached :data:`MAX_STEPS` and later steps are being folded into the last."""

    @property
    def current(self) -> Step | None:
        return self._current

    def begin(self, name: str, now: datetime) -> None:
        self._done, self.folded, self._heard = [], False, False
        self._current = Step(name, now)

    def report(self, report: StepReport, now: datetime) -> bool:
        """Apply ``report``; ``True`` if it began a new step (a step name different from the current one)."""
        current = self._current
        if current is None:
            return False
        self._heard = True
        percent = current.percent_end if report.percent is None else report.percent
        if report.step is not None and report.step != current.name and not self.folded:
            self._close(now)
            if len(self._done) >= MAX_STEPS - 1:
                self.folded = True
                self._current = Step(MORE_STEPS, now, None, percent, percent, report.detail, report.done, report.total)
            else:
                self._current = Step(report.step, now, None, percent, percent, report.detail, report.done, report.total)
            return True
        self._current = replace(
            current,
            percent_end=percent,
            detail=report.detail if report.detail is not None else current.detail,
            done=report.done if report.done is not None else current.done,
            total=report.total if report.total is not None else current.total,
        )
        return False

    def _close(self, now: datetime) -> None:
        if self._current is not None:
            self._done.append(replace(self._current, ended_at=now))
            self._current = None

    def steps(self) -> tuple[Step, ...]:
        """The run's steps so far, the current one last and open."""
        return (*self._done, self._current) if self._current is not None else tuple(self._done)

    def finish(self, now: datetime, percent: float | None = None) -> tuple[Step, ...]:
        """Close the current step (at ``percent``, if given) and return every step; the tracker is then empty."""
        if self._current is not None and percent is not None:
            self._current = replace(self._current, percent_end=percent)
        self._close(now)
        steps, self._done = (tuple(self._done) if self._heard else ()), []
        return steps


def _tidy(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 2)
