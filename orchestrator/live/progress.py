"""The progress document (``data/snapshot_progress.json``): its shape, how to parse it, how to write it."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.core.events import RunStatus, iso, parse_iso
from orchestrator.core.steps import Parsed, StepReport, from_fields
from orchestrator.disk.atomic import InvalidDocument, read_json_object, write_json_atomic
from orchestrator.disk.staged import StagedFile

PROGRESS_FILE_NAME = "snapshot_progress.json"


@dataclass(frozen=True, slots=True)
class Progress:
    """What the job is doing. ``status``/``step``/``progress`` are the original design's fields."""

    status: RunStatus = RunStatus.IDLE
    step: str = ""
    progress: float = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run_id: str | None = None
    trigger: str | None = None
    error: str | None = None
    exit_code: int | None = None
    detail: str | None = None
    """What the step is doing now ("repo 5/15: octo/api"); a new step starts without one."""
    done: int | None = None
    total: int | None = None
    step_started_at: datetime | None = None
    problems: tuple[str, ...] = field(default=(), compare=False)
    """What had to be cut or dropped from a document a job wrote (for one log line, never written back)."""

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "status": self.status.value,
            "step": self.step,
            "progress": _tidy_number(self.progress),
            "startedAt": iso(self.started_at),
        }
        optional = {
            "finishedAt": iso(self.finished_at),
            "runId": self.run_id,
            "trigger": self.trigger,
            "error": self.error,
            "exitCode": self.exit_code,
            "detail": self.detail,
            "done": self.done,
            "total": self.total,
            "stepStartedAt": iso(self.step_started_at),
        }
        doc.update({key: value for key, value in optional.items() if value is not None})
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: Path) -> Progress:
        """Validate a document written by us or by a job; :class:`InvalidDocument` if it does not fit."""
        try:
            status = RunStatus(str(doc.get("status")))
        except ValueError as exc:
            raise InvalidDocument(where, f"unknown status {doc.get('status')!r}") from exc
        step = doc.get("step", "")
        if not isinstance(step, str):
            raise InvalidDocument(where, "step is not a string")
        percent = doc.get("progress", 0)
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not math.isfinite(percent):
            raise InvalidDocument(where, "progress is not a number")
        exit_code = doc.get("exitCode")
        parsed = from_fields({**doc, "progress": percent, "step": step}, percent_key="progress")
        report = parsed.report
        return cls(
            status=status,
            step=report.step or "",
            progress=report.percent or 0,
            detail=report.detail,
            done=report.done,
            total=report.total,
            step_started_at=parse_iso(doc.get("stepStartedAt")),
            problems=parsed.problems,
            started_at=parse_iso(doc.get("startedAt")),
            finished_at=parse_iso(doc.get("finishedAt")),
            run_id=_str_or_none(doc.get("runId")),
            trigger=_str_or_none(doc.get("trigger")),
            error=_str_or_none(doc.get("error")),
            exit_code=exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None,
        )

    def report(self) -> Parsed:
        """This document as a job's report (a job may write the file itself)."""
        return Parsed(StepReport(self.progress, self.step or None, self.detail, self.done, self.total), self.problems)

    @property
    def sign(self) -> tuple[float, str, str | None, int | None]:
        """What tells one report from the next: a change in any of it is a sign of life."""
        return (self.progress, self.step, self.detail, self.done)


def clamp_percent(value: float) -> float:
    return min(100.0, max(0.0, float(value)))


def _tidy_number(value: float) -> float | int:
    """45.0 is written as 45, so the file reads like the original design's."""
    return int(value) if float(value).is_integer() else round(value, 2)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


class ProgressFile:
    """The one progress file. Writes are atomic; reads validate and never return half a document."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._staged = StagedFile(path)

    def write(self, progress: Progress, *, staged: bool = False) -> None:
        """``staged``: through the temp file :meth:`stage` made, if there is one (one caller at a time)."""
        # Not fsynced: it is a live view rewritten many times a run, and the state file is the record; an
        # fsync here would only delay each run's start. Still atomic: readers never see half a document.
        document = progress.to_json()
        if not (staged and self._staged.replace(document)):
            write_json_atomic(self.path, document, durable=False)

    def stage(self) -> None:
        """Make the temp file of the next ``write(staged=True)`` now, ahead of it (if it cannot be made, that
        write makes its own)."""
        with contextlib.suppress(OSError):
            self._staged.stage()

    def unstage(self) -> None:
        self._staged.discard()

    def read(self) -> Progress:
        """The current document; raises ``FileNotFoundError`` or :class:`InvalidDocument`."""
        return Progress.from_json(read_json_object(self.path), self.path)
