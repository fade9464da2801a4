"""``trigger --wait``: follow the run a trigger caused, on the service's event stream, until it ends.

The trigger's answer carries ``requestedAt``; the run it caused is the first one to start at or after that
time (the trigger either started it or was folded into it). The event stream sends the whole status document
on every change, so a dropped connection loses nothing: the next document (after a reconnect) says where the
run is, and a run that ended while we were away is looked up in the history.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import sseclient
from tqdm import tqdm

from orchestrator.cli import httpclient
from orchestrator.cli.httpclient import Redirected
from orchestrator.core.events import parse_iso
from orchestrator.core.printable import first_line, printable

log = logging.getLogger(__name__)

STREAM_READ_TIMEOUT = 60.0
"""Longer than the service's keep-alive pings (15 s by default): silence this long is a dead connection."""
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0)
GIVE_UP_AFTER_SECONDS = 300.0
"""How long the service may stay unreachable before we stop waiting (the run itself is not affected)."""


class Exit(enum.IntEnum):
    """``trigger --wait`` exit statuses, for shell scripts and CI jobs."""

    COMPLETED = 0
    FAILED = 1
    """The run ended ``error`` or ``cancelled``."""
    TROUBLE = 2
    """We could not follow the run: bad settings, or the service refused or went away for good."""
    INTERRUPTED = 130
    """Ctrl-C: we stopped waiting; the run goes on."""


class Lost(Exception):
    """The service could not be reached for :data:`GIVE_UP_AFTER_SECONDS`."""


@dataclass(frozen=True, slots=True)
class Sighting:
    """What one status document says about our run."""

    run_id: str | None
    running: dict[str, Any] | None = None
    """Our run's record while it runs."""
    finished: dict[str, Any] | None = None
    """Our run's record once it has ended."""
    missed: bool = False
    """Our run is neither running nor the last run: it ended while we were not looking (look it up)."""


def sight(document: dict[str, Any], requested_at: datetime, run_id: str | None, *, queued: bool = False) -> Sighting:
    """Where our run is in ``document``. ``run_id`` is ``None`` until the run has been seen once. ``queued``:
    the trigger's answer said a run was going on; ours is the follow-up, which starts strictly after the
    trigger (times are to the millisecond: the run going on may have started in the trigger's millisecond)."""
    current = document.get("currentRun") or None
    last = document.get("lastRun") or None
    if run_id is None:
        # The earlier of the two is ours: a last run that started after the trigger started and ended between
        # two documents (a quick job); else the current run, if it started after the trigger.
        if last is not None and _started_since(last, requested_at, queued):
            return Sighting(last["runId"], finished=last)
        if current is not None and _started_since(current, requested_at, queued):
            return Sighting(current["runId"], running=current)
        return Sighting(None)
    if last is not None and last.get("runId") == run_id:
        return Sighting(run_id, finished=last)
    if current is not None and current.get("runId") == run_id:
        return Sighting(run_id, running=current)
    return Sighting(run_id, missed=True)


def _started_since(run: dict[str, Any], requested_at: datetime, strictly: bool) -> bool:
    started = parse_iso(run.get("startedAt"))
    if started is None:
        return False
    return started > requested_at if strictly else started >= requested_at


def outcome_exit(record: dict[str, Any]) -> Exit:
    return Exit.COMPLETED if record.get("status") == "completed" else Exit.FAILED


def duration_text(seconds: float | None) -> str:
    """``75`` -> ``1:15``; ``3725`` -> ``1:02:05``."""
    if seconds is None:
        return "?"
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


BAR_WIDTH = 24
"""The bar's width on a terminal wide enough for the whole line."""
MIN_BAR_WIDTH = 6
"""Narrower than this, a bar says nothing the percent does not: it goes, and the step keeps its room."""
ELLIPSIS = "\u2026"


@dataclass(frozen=True, slots=True)
class BarLayout:
    """One terminal line: ``bar_width`` cells of bar (0: no bar), then the percent, then ``text``."""

    bar_width: int
    text: str


def bar_layout(columns: int, step: str, timing: str) -> BarLayout:
    """Fit ``[bar| ]NNN% [step ](timing)`` into ``columns``. What gives way first when it is narrow: the bar
    shrinks to :data:`MIN_BAR_WIDTH`, then goes; then the step is shortened; the times are cut last."""
    room = max(0, columns - 1)  # a line that fills the last column wraps on some terminals
    times = f"({timing})"
    free = room - len("100% ") - len(times)  # for "bar| " and "step "
    step_cells = len(step) + 1 if step else 0
    bar = min(BAR_WIDTH, free - step_cells - len("| "))
    if bar >= MIN_BAR_WIDTH:
        return BarLayout(bar, _joined(step, times))
    if step and free - 1 >= 1:
        return BarLayout(0, _joined(_shortened(step, free - 1), times))
    return BarLayout(0, times[: max(0, room - len("100% "))])


def _shortened(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + ELLIPSIS


def _joined(step: str, times: str) -> str:
    return f"{step} {times}" if step else times


def terminal_columns(out: IO[str]) -> int:
    """The width of the terminal ``out`` writes to, asked on every redraw (it may be resized)."""
    try:
        columns = os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError):  # not a real terminal (io.UnsupportedOperation is both)
        columns = 0
    if columns <= 0:  # a pty nobody gave a size reports 0
        try:
            columns = int(os.environ.get("COLUMNS") or 80)
        except ValueError:
            columns = 80
    return columns if columns > 0 else 80


class Display:
    """A progress bar on a terminal; one line per new step elsewhere (a CI log must stay readable)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.tty = out.isatty()
        self._bar: tqdm[Any] | None = None
        self._last_line = ""
        self._shown: tuple[float, str] | None = None

    def waiting(self, message: str) -> None:
        self._line(message)

    def show(self, document: dict[str, Any], run: dict[str, Any]) -> None:
        progress = document.get("progress") or {}
        percent = float(progress.get("progress") or 0)
        step = printable(str(progress.get("step") or ""))  # written by the job: no escapes reach the terminal
        now = parse_iso(document.get("serverTime"))
        started = parse_iso(run.get("startedAt"))
        elapsed = (now - started).total_seconds() if now and started else None
        eta = document.get("eta") or {}
        left = eta.get("secondsLeft") if isinstance(eta, dict) else None
        timing = f"{duration_text(elapsed)} elapsed" + (f", about {duration_text(left)} left" if left else "")
        if not self.tty:
            line = f"{percent:3.0f}% {step} ({timing})"
            if (percent, step) != self._shown:
                self._shown = (percent, step)
                self._line(line)
            return
        columns = terminal_columns(self.out)
        layout = bar_layout(columns, step, timing)
        # The whole line is laid out here: tqdm's own postfix adds ", " and its trimming cuts the end (the
        # times) of a line too long for the terminal. The step goes in as a value, never as format text.
        bar_format = f"{{bar:{layout.bar_width}}}| {{n:3.0f}}% {{desc}}" if layout.bar_width else "{n:3.0f}% {desc}"
        n = min(100.0, max(0.0, percent))
        if self._bar is None:
            self._bar = tqdm(
                total=100, initial=n, desc=layout.text, bar_format=bar_format, ncols=columns, file=self.out, leave=True
            )
            return
        self._bar.bar_format = bar_format
        self._bar.ncols = columns
        self._bar.n = n
        self._bar.set_description_str(layout.text, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _line(self, text: str) -> None:
        text = printable(text)
        if text == self._last_line:
            return
        self._last_line = text
        if self._bar is not None:
            self._bar.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)


class Follower:
    """Follows one run over ``GET /api/snapshot/events`` (``api``: the path of the job's API, by default the
    default job's); ``open_url`` is urllib's without redirects (orchestrator/cli/httpclient.py), replaceable in
    tests."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        display: Display,
        api: str = "/api/snapshot",
        open_url: Callable[..., Any] = httpclient.open_url,
        monotonic: Callable[[], float] = time.monotonic,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.api = api
        self.headers = headers
        self.display = display
        self._open = open_url
        self._monotonic = monotonic
        self._pause = pause

    def follow(self, requested_at: datetime, *, queued: bool = False) -> dict[str, Any]:
        """The record of the run caused by a trigger at ``requested_at``, once it has ended; ``queued`` as
        the trigger's answer said (see :func:`sight`)."""
        run_id: str | None = None
        said_waiting = False
        for document in self._documents():
            seen = sight(document, requested_at, run_id, queued=queued)
            run_id = seen.run_id
            if seen.missed and run_id is not None:
                record = self._lookup(run_id)
                if record is not None and record.get("status") != "running":
                    return record
            elif seen.finished is not None:
                return seen.finished
            elif seen.running is not None:
                self.display.show(document, seen.running)
            elif not said_waiting:
                said_waiting = True
                current = document.get("currentRun")
                self.display.waiting(
                    f"Queued behind run {current['runId']}; waiting for it to end"
                    if current
                    else "Waiting for the run to start"
                )
        raise Lost("the event stream ended")  # pragma: no cover - _documents only ends by raising

    def _documents(self) -> Iterator[dict[str, Any]]:
        """Status documents from the event stream, reconnecting (with a note) when the connection drops."""
        attempt = 0
        down_since: float | None = None
        while True:
            request = urllib.request.Request(
                f"{self.url}{self.api}/events", headers={"Accept": "text/event-stream", **self.headers}
            )
            try:
                with self._open(request, timeout=STREAM_READ_TIMEOUT) as response:
                    for event in sseclient.SSEClient(response).events():
                        if event.event != "status":
                            continue
                        attempt, down_since = 0, None
                        try:
                            document = json.loads(event.data)
                        except ValueError:
                            continue
                        if isinstance(document, dict):
                            yield document
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403, 404) or isinstance(exc, Redirected):
                    raise  # waiting will not help: the caller says what the service said
                problem = f"the service answered {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                problem = f"lost the service ({getattr(exc, 'reason', exc)})"
            else:
                problem = "the service closed the event stream"
            now = self._monotonic()
            down_since = now if down_since is None else down_since
            if now - down_since > GIVE_UP_AFTER_SECONDS:
                raise Lost(f"{problem}, for more than {GIVE_UP_AFTER_SECONDS:g} s")
            if attempt == 0:
                self.display.waiting(f"{problem}; reconnecting...")
            self._pause(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
            attempt += 1

    def _lookup(self, run_id: str) -> dict[str, Any] | None:
        request = urllib.request.Request(f"{self.url}{self.api}/runs/{run_id}", headers=self.headers)
        try:
            with self._open(request, timeout=10) as response:
                record = json.load(response)
        except (urllib.error.URLError, OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None


def summary(record: dict[str, Any]) -> str:
    """One line on how the run ended, printable (the error and step come from the job)."""
    status = record.get("status", "?")
    took = duration_text(record.get("durationSeconds"))
    line = f"Run {record.get('runId')} {status} in {took}"
    if status != "completed":
        error = first_line(str(record.get("error") or ""))
        line += f": {error}" if error else ""
        if record.get("step"):
            line += f" (last step: {record['step']})"
    return printable(line)
