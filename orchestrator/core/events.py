"""The values that cross module boundaries: trigger sources, run outcomes, the trigger event itself."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Source(StrEnum):
    """Where a request for a run came from; handed to the job as ``SNAPSHOT_TRIGGER``."""

    TIMER = "timer"
    """The interval timer found a run due."""
    FILE = "file"
    """A file appeared in (or was touched in) the triggers folder."""
    HTTP = "http"
    """``POST /api/snapshot/trigger``."""
    STARTUP = "startup"
    """A run was due when the service started (first start, or one fell due while it was down)."""
    AFTER = "after"
    """A run of a job this one follows (its ``after``) completed."""

    @property
    def is_manual(self) -> bool:
        """Manual runs push the next automatic run back by the cooldown."""
        return self in (Source.FILE, Source.HTTP)


class RunStatus(StrEnum):
    """The ``status`` field of the progress document."""

    IDLE = "idle"
    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"
    CANCELLED = "cancelled"


MAX_REASON_CHARS = 500


def clean_reason(text: str) -> str:
    """A reason fit for logs, the job's environment and JSON: one line of printable text, at most
    :data:`MAX_REASON_CHARS`. Control characters (a NUL would make the job impossible to start) become
    spaces and lone surrogates (from undecodable bytes) become U+FFFD."""
    if not text.isprintable():  # (a lone surrogate is not printable either: printable text is kept as it is)
        text = text.encode("utf-8", errors="replace").decode("utf-8")
        text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())[:MAX_REASON_CHARS]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(at: datetime | None) -> str | None:
    """ISO-8601 UTC with a trailing ``Z``, the form every document of ours uses."""
    if at is None:
        return None
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: object) -> datetime | None:
    """Inverse of :func:`iso`; ``None`` for anything that is not a timestamp."""
    if not isinstance(text, str):
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
        # In UTC, as every time of ours; a time at the ends of the calendar may not fit ("9999-12-31T23:59-05:00").
        return at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


class Receipt:
    """Told once the triggers that carry it are in the state on disk, or could not be put there.

    What a source promises its sender waits for it: a trigger file is removed, and a ``202`` sent, only once
    the trigger is durable (a crash after that point cannot lose it). One receipt may travel with a whole
    batch of triggers (a burst of files is one save)."""

    __slots__ = ("_saved",)

    def __init__(self) -> None:
        self._saved: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def settle(self, saved: bool) -> None:
        """Said by the runner after its save: ``True`` if the trigger is on disk, ``False`` if it was refused."""
        if not self._saved.done():
            self._saved.set_result(saved)

    @property
    def settled(self) -> bool:
        return self._saved.done()

    async def saved(self) -> bool:
        """Wait for the verdict (a cancel of the waiter leaves it to others)."""
        return await asyncio.shield(self._saved)


class TriggerNotSaved(Exception):
    """A trigger that could not be put on disk, and so was not taken: its sender must not be told it was."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """One request for a run. Every source builds one of these and puts it on the queue."""

    source: Source
    at: datetime
    reason: str = ""
    receipt: Receipt | None = field(default=None, compare=False, repr=False)
    """Settled by the runner once the trigger is saved (``None``: nobody waits, as for the timer's)."""
    retried: bool = False
    """Its run was interrupted by a crash of the service once already and it is being run again: a second
    crash drops it (so a trigger whose run kills the service cannot do so for ever)."""

    def __post_init__(self) -> None:
        # Every source goes through here, so no unclean reason reaches the state file or the job.
        object.__setattr__(self, "reason", clean_reason(self.reason))

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"source": self.source.value, "at": iso(self.at), "reason": self.reason}
        if self.retried:
            doc["retried"] = True
        return doc

    @classmethod
    def from_json(cls, data: object) -> Trigger | None:
        """Rebuild a persisted trigger; ``None`` if the record is not one (it is then dropped)."""
        if not isinstance(data, dict):
            return None
        try:
            source = Source(str(data.get("source")))
        except ValueError:
            return None
        at = parse_iso(data.get("at"))
        reason = data.get("reason", "")
        if at is None or not isinstance(reason, str):
            return None
        return cls(source=source, at=at, reason=reason, retried=data.get("retried") is True)
