"""The status document as JSON bytes, encoded once per change and answered to every request in between.

Only its clock fields move with time alone (``serverTime``, ``minutesUntilNextRun``, ``secondsUntilNextRun``
and the ``eta``'s ``secondsLeft``); they are put in as of each request, from the moments they count to. Three
layers, each kept while it holds:

- :class:`Template`: the document encoded once (``json.dumps``) with a mark where each clock field goes. Its
  owner keeps it until the job's state changes, or a moment comes at which a field that is not a clock field
  changes with time (a cooldown ends, a check appears): ``holds``.
- :class:`Filled`: the template with its countdowns put in (to the tenth of a second, the whole minute). A
  countdown only ever goes down as time goes on, so one that reads the same at both ends of a span reads the
  same all along it: a filled template is kept for as long as that was checked to be so (about a tenth of a
  second).
- the bytes: ``serverTime`` (to the millisecond) put in, the last answer kept for the rest of its millisecond.

Every value is computed as :func:`orchestrator.live.status.status_document` computes it, from the same moments:
the bytes are exactly ``json.dumps`` of the document built at the request's ``now``. Pure: each call takes
``now``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.core.events import iso
from orchestrator.core.records import State
from orchestrator.live.status import StatusInputs, status_document

MINUTES, SECONDS, SECONDS_LEFT, SERVER_TIME = "minutes", "seconds", "secondsLeft", "serverTime"
NEVER = datetime.max.replace(tzinfo=UTC)
SAFETY = MILLISECOND = timedelta(milliseconds=1)
INSTANT = timedelta(microseconds=1)
"""How long before a countdown's computed change a filled template is first checked to hold (rounding at the
edge); then just before it."""


def _mark(name: str) -> str:
    # json.dumps writes U+0000 as \u0000; a document that happens to hold the same text is caught (``_split``).
    return f"\x00{name}\x00"


class Template:
    """``document`` (built at ``built_at``) encoded with its clock fields open: ``due`` is the ``nextRunAt``
    the countdowns count to (``None``: none), ``finish_at`` the ``eta``'s (``None``: no eta). ``valid_until``:
    the first moment at which a field that is not a clock field may read otherwise (``None``: not with time)."""

    __slots__ = ("_filled", "_parts", "built_at", "document", "due", "finish_at", "valid_until")

    def __init__(
        self,
        document: dict[str, Any],
        *,
        built_at: datetime,
        due: datetime | None,
        finish_at: datetime | None,
        valid_until: datetime | None,
    ) -> None:
        self.built_at, self.due, self.valid_until = built_at, due, valid_until
        self.document = document
        eta = document.get("eta")
        self.finish_at = finish_at if isinstance(eta, dict) and "secondsLeft" in eta else None
        self._parts: tuple[str, ...] | None = None
        self._filled: Filled | None = None

    def holds(self, now: datetime) -> bool:
        """Whether every field that is not a clock field reads the same at ``now`` as when it was built."""
        return self.built_at <= now and (self.valid_until is None or now < self.valid_until)

    def filled(self, now: datetime) -> Filled:
        """The template with its countdowns as of ``now`` (``serverTime`` still open)."""
        filled = self._filled
        if filled is None or not filled.holds(now):
            filled = self._filled = Filled(self, now)
        return filled

    def at(self, now: datetime) -> bytes:
        """The document as of ``now`` (while it :meth:`holds`)."""
        return self.filled(now).at(now)

    def countdowns(self, now: datetime) -> tuple[str, ...]:
        """The countdowns' JSON as of ``now``, in the document's order, as ``status_document`` writes them."""
        values: list[str] = []
        if self.due is not None:
            seconds = (self.due - now).total_seconds()
            values += [str(max(0, math.ceil(seconds / 60))), repr(max(0.0, round(seconds, 1)))]
        if self.finish_at is not None:
            values.append(repr(max(0.0, round((self.finish_at - now).total_seconds(), 1))))
        return tuple(values)

    def countdowns_change(self, now: datetime) -> datetime | None:
        """About when the next countdown reads otherwise, from ``now`` (computed in floats: checked by
        :class:`Filled`); ``None``: none ever will (each is at 0, where it stays)."""
        moments: list[datetime] = []
        for to in (self.due, self.finish_at):
            if to is None:
                continue
            left = (to - now).total_seconds()
            tenths = max(0.0, round(left, 1))
            if tenths > 0:  # the tenth goes down once fewer than tenths - 0.05 s are left
                moments.append(now + timedelta(seconds=left - (tenths - 0.05)))
            if to is self.due and (minutes := math.ceil(left / 60)) > 0:  # the minute, at (minutes - 1) * 60 s
                moments.append(now + timedelta(seconds=left - (minutes - 1) * 60))
        return min(moments, default=None)

    def document_at(self, now: datetime) -> dict[str, Any]:
        """The document with its clock fields as of ``now``, for a document whose text held a mark."""
        document = dict(self.document)
        values = iter(self.countdowns(now))
        if self.due is not None:
            document["minutesUntilNextRun"] = json.loads(next(values))
            document["secondsUntilNextRun"] = json.loads(next(values))
        eta = document.get("eta")
        if isinstance(eta, dict) and self.finish_at is not None:
            document["eta"] = {**eta, "secondsLeft": json.loads(next(values))}
        document["serverTime"] = iso(now)
        return document

    @property
    def parts(self) -> tuple[str, ...]:
        """The encoded text around the marks (one more than the marks); empty if the document held a mark.
        Encoded when first asked for: a document published and never asked for over HTTP costs nothing more."""
        if self._parts is None:
            marked = dict(self.document)
            names: list[str] = []
            if self.due is not None:
                marked["minutesUntilNextRun"], marked["secondsUntilNextRun"] = _mark(MINUTES), _mark(SECONDS)
                names += [MINUTES, SECONDS]
            eta = marked.get("eta")
            if isinstance(eta, dict) and self.finish_at is not None:
                marked["eta"] = {**eta, "secondsLeft": _mark(SECONDS_LEFT)}
                names.append(SECONDS_LEFT)
            marked["serverTime"] = _mark(SERVER_TIME)
            names.append(SERVER_TIME)
            self._parts = _split(json.dumps(marked), names)
        return self._parts


class Filled:
    """A template's countdowns as of a moment (``since``), and until when they read the same (``until``,
    ``None``: for good). Its bytes (:meth:`at`) are the document's with ``serverTime`` put in."""

    __slots__ = ("_last", "_template", "parts", "since", "until")

    def __init__(self, template: Template, now: datetime) -> None:
        self._template = template
        values = template.countdowns(now)
        self.since = now
        change = template.countdowns_change(now)
        self.until = None if change is None else now
        # Countdowns only go down: the same at both ends of a span means the same all along it. A little before
        # the change computed (rounding), else just before it, else only this moment.
        for until in () if change is None else (change - SAFETY, change - INSTANT):
            if until > now and template.countdowns(until) == values:
                self.until = until
                break
        parts = template.parts
        self.parts: tuple[bytes, bytes] | None = None
        if parts:
            text = parts[0] + "".join(value + part for value, part in zip(values, parts[1:-1], strict=True))
            self.parts = (text.encode(), parts[-1].encode())
        self._last = NO_ANSWER

    def holds(self, now: datetime) -> bool:
        return self.since <= now and (self.until is None or now <= self.until)

    def at(self, now: datetime) -> bytes:
        last = self._last
        if last[0] <= now < last[1]:
            return last[2]
        millisecond = _millisecond(now)
        if self.parts is None:
            body = json.dumps(self._template.document_at(now)).encode()
        else:
            body = b'"'.join((self.parts[0], (iso(now) or "").encode(), self.parts[1]))
        self._last = (millisecond, millisecond + MILLISECOND, body)
        return body


NO_ANSWER: tuple[datetime, datetime, bytes] = (NEVER, NEVER, b"")
"""None kept. An answer is kept with the start and end of its millisecond: two comparisons, not a ``replace``."""


def _millisecond(now: datetime) -> datetime:
    """``now`` to the millisecond, as ``serverTime`` shows it (cheaper to compare than to format)."""
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


def _split(text: str, names: list[str]) -> tuple[str, ...]:
    """``text`` cut at the mark of each of ``names``, in order; empty if a mark is not there exactly once."""
    parts: list[str] = []
    rest = text
    for name in names:
        mark = json.dumps(_mark(name))
        if text.count(mark) != 1 or mark not in rest:
            return ()
        before, _, rest = rest.partition(mark)
        parts.append(before)
    parts.append(rest)
    return tuple(parts)


def template(
    inputs: StatusInputs, now: datetime, *, finish_at: datetime | None, checks_change: datetime | None, due_counts: bool
) -> Template:
    """The status document of ``inputs`` as of ``now``; ``finish_at``: when the ``eta`` says the run ends; the
    rest as :func:`valid_until` takes it."""
    until = valid_until(inputs.state, now, checks_change=checks_change, due_counts=due_counts)
    return Template(status_document(inputs, now), built_at=now, due=inputs.due, finish_at=finish_at, valid_until=until)


def valid_until(state: State, now: datetime, *, checks_change: datetime | None, due_counts: bool) -> datetime | None:
    """Until when a status document built at ``now`` reads the same but for its clock fields (``None``: until
    something changes): the cooldown's end (``cooldownUntil`` goes), the checks' next change. ``due_counts``:
    the next run's due time is counted from ``now`` (a job with a schedule and no run on record yet): such a
    document holds only for the moment it was built."""
    if due_counts:
        return now
    moments = [at for at in (state.not_before, checks_change) if at is not None and at > now]
    return min(moments, default=None)


class Changes:
    """Counts the templates built for any job: what is made of several jobs' templates holds while it stays."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class StatusCache:
    """One job's template, kept until another is built (:meth:`renew`: the job's status changed), the state it was
    built from is no longer the job's (a change nobody said is seen too), or it no longer :meth:`holds`;
    ``build`` makes one as of a moment; ``changes`` counts every one built."""

    __slots__ = ("_before", "_build", "_changes", "_filled", "_key", "_since", "_template", "_until")

    def __init__(self, build: Callable[[datetime], Template], changes: Changes | None = None) -> None:
        self._build = build
        self._changes = changes or Changes()
        self._template: Template | None = None
        self._key: object = None
        self._filled: Filled | None = None
        self._since = self._before = self._until = NEVER
        """When the template and its countdowns as last filled both hold: from ``_since``, before ``_before``,
        up to ``_until``."""

    def renew(self, now: datetime, key: object) -> Template:
        """A template built at ``now`` for the state ``key`` (something changed), kept."""
        template = self._template = self._build(now)
        self._key, self._since = key, NEVER
        self._changes.count += 1
        return template

    def template(self, now: datetime, key: object) -> Template:
        """The template that holds at ``now`` for the state ``key``."""
        template = self._template
        if template is None or key is not self._key or not template.holds(now):
            template = self.renew(now, key)
        return template

    def at(self, now: datetime, key: object) -> bytes:
        """The document as of ``now``, as JSON."""
        filled = self._filled
        if filled is None or key is not self._key or not self._since <= now < self._before or now > self._until:
            template = self.template(now, key)
            filled = self._filled = template.filled(now)
            self._since = max(template.built_at, filled.since)
            self._before, self._until = template.valid_until or NEVER, filled.until or NEVER
        return filled.at(now)


class StatusList:
    """Several jobs' status documents as one JSON array (``[doc, doc, ...]``), each as :meth:`StatusCache.at`
    answers it, with one ``serverTime``: its text is kept while the jobs are the same (``version``), no job's
    template is built again (``changes``) and every one holds, its countdowns included; then only the moment is
    put in per request."""

    __slots__ = ("_before", "_changes", "_key", "_keys", "_last", "_parts", "_since", "_until")

    def __init__(self, changes: Changes) -> None:
        self._changes = changes
        self._key: tuple[object, int] | None = None
        self._keys: tuple[object, ...] = ()
        """Each job's state when the text was made: a state changed without a new template (a trigger taken,
        a pid saved) makes that job's document, and so the text, another."""
        self._since = self._before = self._until = datetime.min
        self._parts: list[bytes] | None = []
        self._last = NO_ANSWER

    def at(
        self,
        now: datetime,
        version: object,
        caches: Callable[[], Iterable[tuple[StatusCache, object]]],
        head: bytes = b"[",
        tail: bytes = b"]",
    ) -> bytes:
        """The documents as of ``now`` between ``head`` and ``tail`` (``version`` names both, and the jobs);
        ``caches``: each job's cache and its state now, in order."""
        pairs = list(caches())
        if (
            self._key != (version, self._changes.count)
            or not self._since <= now < self._before
            or now > self._until
            or len(pairs) != len(self._keys)
            or any(key is not kept for (_, key), kept in zip(pairs, self._keys, strict=True))
        ):
            self._fill(now, version, pairs, head, tail)
        last = self._last
        if last[0] <= now < last[1]:
            return last[2]
        millisecond = _millisecond(now)
        if self._parts is None:  # a document that held the text of a mark: each encoded whole
            self._key = None
            body = head + b", ".join(cache.at(now, key) for cache, key in pairs) + tail
        else:
            body = b'"'.join((b"", (iso(now) or "").encode(), b"")).join(self._parts)
        self._last = (millisecond, millisecond + MILLISECOND, body)
        return body

    def _fill(
        self, now: datetime, version: object, caches: list[tuple[StatusCache, object]], head: bytes, tail: bytes
    ) -> None:
        filled = []
        self._since, self._before, self._until = now, NEVER, NEVER
        for cache, key in caches:
            template = cache.template(now, key)
            each = template.filled(now)
            filled.append(each)
            self._since = max(self._since, template.built_at, each.since)
            self._before = min(self._before, template.valid_until or NEVER)
            self._until = min(self._until, each.until or NEVER)
        self._key, self._last = (version, self._changes.count), NO_ANSWER
        self._keys = tuple(key for _, key in caches)
        if any(each.parts is None for each in filled):
            self._parts = None
            return
        parts, text = [], head
        for index, each in enumerate(filled):
            assert each.parts is not None
            parts.append(text + (b", " if index else b"") + each.parts[0])
            text = each.parts[1]
        parts.append(text + tail)
        self._parts = parts
