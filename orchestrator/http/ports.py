"""What the HTTP room sees of the rest: for each job a read-only view of its status and a command interface,
never the runner's fields. The service (orchestrator/service.py) hands over a :class:`Served`; each job's unit
(orchestrator/unit.py) is both the view and the commands (a :class:`JobPort`). A reload answers the
jobs file's :class:`~orchestrator.jobsfile.plan.Plan`, or raises its ``ReloadRefused`` (both live beside the
jobs file, below this room, so that it never imports the service above it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from orchestrator.config import Settings
from orchestrator.core.clock import Clock
from orchestrator.core.events import Source, Trigger
from orchestrator.core.records import Pause
from orchestrator.jobsfile.plan import Plan
from orchestrator.live.progress import Progress
from orchestrator.store import RunHistory
from orchestrator.store.runlogs import RunLogs

if TYPE_CHECKING:  # the step figures: imported when a page asks for them
    from orchestrator.core.stepstats import RunTimeline


class StatusView(Protocol):
    """The job's status, read only: the status document, what it is made of, and its published versions."""

    def now(self) -> datetime: ...

    @property
    def running(self) -> bool: ...

    @property
    def stopping(self) -> str | None:
        """Why the running run is being stopped, or ``None``."""

    @property
    def paused(self) -> Pause | None: ...

    def next_run_at(self) -> datetime | None:
        """When the next automatic run is due; ``None`` for a job with no automatic runs."""

    def progress(self) -> Progress: ...

    def running_steps(self) -> RunTimeline | None:
        """The running run's id and start with its steps so far, the current one last and not ended; ``None``
        when nothing runs."""

    def status(self) -> dict[str, Any]: ...

    def status_json(self) -> bytes:
        """The status document as of now, as JSON (encoded once per change)."""

    def latest(self) -> tuple[int, dict[str, Any]]:
        """The latest published status document and its version."""

    async def next_after(self, version: int) -> tuple[int, dict[str, Any]]:
        """Wait for a version newer than ``version``; ``HubClosed`` (orchestrator/live/hub.py) at shutdown."""

    def status_event(self, version: int, document: dict[str, Any]) -> str:
        """The JSON of a published document, with its clock fields as of now."""


class Commands(Protocol):
    """What the HTTP room may ask of the job."""

    async def request_run(self, source: Source, reason: str = "") -> Trigger:
        """The trigger, once it is saved; ``TriggerNotSaved`` (orchestrator/core/events.py) if it could not be."""

    def cancel(self, reason: str) -> str | None:
        """End the running run as cancelled: its id, or ``None`` if nothing runs."""

    def set_pause(self, paused: Pause | None) -> bool:
        """Pause or (``None``) resume the schedule; ``False`` if the change could not be saved."""


class JobPort(StatusView, Commands, Protocol):
    """One job as the HTTP room sees it: its status view and its commands in one object."""


class Controls(Protocol):
    @property
    def view(self) -> StatusView: ...

    @property
    def commands(self) -> Commands: ...


class MetricsPage(Protocol):
    def render(self) -> bytes: ...

    def count_streams(self, open_streams: Callable[[], int], log_streams: Callable[[], int] = ...) -> None: ...


class Served(Controls, Protocol):
    """The service as the app runs and serves it."""

    @property
    def settings(self) -> Settings: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def history(self) -> RunHistory: ...

    @property
    def logs(self) -> RunLogs: ...

    @property
    def metrics(self) -> MetricsPage: ...

    @property
    def default_job(self) -> str:
        """The job of ``/api/snapshot/...`` (``snapshot`` without a jobs file); ``view`` and ``commands`` are its."""

    def job(self, name: str) -> JobPort:
        """The job called ``name``; ``KeyError`` if the service has none."""

    def jobs(self) -> Mapping[str, JobPort]:
        """Every job, by name, in the jobs file's order (a reload changes them)."""

    def jobs_status_json(self, head: bytes = b"[", tail: bytes = b"]") -> bytes:
        """Every job's status document as of now, in the order of ``jobs``, between ``head`` and ``tail`` (a
        JSON array by default)."""

    async def reload(self) -> Plan:
        """Read the jobs file again and apply it: what changed; ``ReloadRefused`` (orchestrator/jobsfile/plan.py)
        with one line when there is no file or it cannot be used (the running jobs stay)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


SERVED: web.AppKey[Served] = web.AppKey("served")
"""The service the app serves (set by ``create_app``)."""
