"""The status document encoded once per change: at every moment its bytes are exactly ``json.dumps`` of the
document built at that moment, however the encoding is reused in between (the countdowns at their edges, the
millisecond, a clock set back); and how long a document holds (a cooldown's end, the checks' next change, a
due time counted from now)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from orchestrator.core.eta import Basis, Eta
from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import RunRecord, State
from orchestrator.live.encoded import Changes, StatusCache, StatusList, Template, template, valid_until
from orchestrator.live.progress import Progress
from orchestrator.live.status import StatusInputs, status_document
from tests.fakes import T0, minutes

CURRENT = RunRecord("20260120T100000Z-bbbbbb", (Trigger(Source.HTTP, T0, "deploy"),), T0, trigger_count=1)
RUNNING = Progress(RunStatus.RUNNING, "Copying", 45, started_at=T0, run_id=CURRENT.run_id)
MS = timedelta(milliseconds=1)
US = timedelta(microseconds=1)


def inputs(due: datetime | None, eta: Eta | None = None, state: State | None = None) -> StatusInputs:
    return StatusInputs(
        state or State(current=CURRENT),
        RUNNING,
        due,
        30,
        5,
        eta=None if eta is None else eta.to_json(T0),
        checks=({"kind": "late", "message": "x"},),
    )


def built(given: StatusInputs, eta: Eta | None, at: datetime) -> Template:
    finish = None if eta is None else eta.finish_at
    return template(given, at, finish_at=finish, checks_change=None, due_counts=False)


def expected(given: StatusInputs, eta: Eta | None, now: datetime) -> bytes:
    document = status_document(given, now)
    if eta is not None:
        document["eta"] = eta.to_json(now)
    return json.dumps(document).encode()


DUE = T0 + timedelta(minutes=30, microseconds=123_457)
ETA = Eta(T0 + timedelta(seconds=95, microseconds=49_999), Basis.HISTORY)


def moments() -> list[timedelta]:
    """Offsets from T0: every few ms over a few seconds, and around each tenth and minute edge of DUE and ETA."""
    found = [timedelta(milliseconds=7 * k) for k in range(600)]
    for to in (DUE, ETA.finish_at):
        for tenth in range(0, 40):
            edge = to - T0 - timedelta(milliseconds=50 + 100 * tenth)
            found += [edge + d for d in (-MS, -US, timedelta(0), US, MS)]
    for minute in (29, 30):
        edge = DUE - T0 - timedelta(minutes=30 - minute)
        found += [edge + d for d in (-MS, -US, timedelta(0), US, MS)]
    return sorted(d for d in found if d >= timedelta(0))


@pytest.mark.parametrize(
    ("due", "eta"), [(DUE, ETA), (DUE, None), (None, ETA), (None, None), (T0 - minutes(1), ETA)], ids=str
)
def test_every_moment_answers_the_document_built_at_that_moment(due: datetime | None, eta: Eta | None) -> None:
    given = inputs(due, eta)
    encoded = built(given, eta, T0)
    for offset in moments():
        now = T0 + offset
        assert encoded.holds(now)
        assert encoded.at(now) == expected(given, eta, now), now
    for offset in reversed(moments()[:200]):  # and going back in time once built
        now = T0 + offset
        assert encoded.at(now) == expected(given, eta, now), now


def test_countdowns_are_reused_only_while_they_read_the_same() -> None:
    given = inputs(DUE, ETA)
    encoded = built(given, ETA, T0)
    first = encoded.filled(T0)
    assert first.until is not None and T0 < first.until < T0 + timedelta(milliseconds=100)
    assert encoded.filled(first.until) is first
    assert encoded.filled(first.until + US) is not first
    later = encoded.filled(T0 + 5 * MS)
    assert encoded.filled(T0 + 4 * MS) is not later, "not before the moment it was filled at"
    past = built(inputs(T0 - minutes(5)), None, T0).filled(T0)
    assert past.until is None, "a countdown at 0 stays at 0"


def test_a_document_holding_the_text_of_a_mark_is_encoded_whole_each_time() -> None:
    given = inputs(DUE, ETA, State(current=CURRENT, paused=None))
    sneaky = StatusInputs(**{**_fields(given), "stopping": "\x00serverTime\x00", "after": ("\x00minutes\x00",)})
    encoded = built(sneaky, ETA, T0)
    assert encoded.parts == ()
    for offset in moments()[:50]:
        assert encoded.at(T0 + offset) == expected(sneaky, ETA, T0 + offset)


def _fields(given: StatusInputs) -> dict[str, Any]:
    return {name: getattr(given, name) for name in StatusInputs.__dataclass_fields__}


def test_a_document_holds_until_the_cooldown_ends_or_the_checks_change() -> None:
    cooling = State(last_run=CURRENT, not_before=T0 + minutes(3))
    assert valid_until(cooling, T0, checks_change=None, due_counts=False) == T0 + minutes(3)
    assert valid_until(cooling, T0, checks_change=T0 + minutes(1), due_counts=False) == T0 + minutes(1)
    assert valid_until(cooling, T0 + minutes(3), checks_change=None, due_counts=False) is None, "cooled down"
    assert valid_until(State(), T0, checks_change=None, due_counts=True) == T0, "due counted from now: no reuse"
    encoded = template(inputs(DUE, state=cooling), T0, finish_at=None, checks_change=None, due_counts=False)
    assert encoded.holds(T0) and encoded.holds(T0 + minutes(3) - US)
    assert not encoded.holds(T0 + minutes(3)) and not encoded.holds(T0 - US)
    assert json.loads(encoded.at(T0))["cooldownUntil"] == "2026-01-20T10:03:00.000Z"


def test_the_cache_builds_again_on_a_change_a_new_state_or_when_the_document_no_longer_holds() -> None:
    builds: list[datetime] = []
    state = State(last_run=CURRENT, not_before=T0 + minutes(3))

    def build(now: datetime) -> Template:
        builds.append(now)
        return template(inputs(DUE, state=state), now, finish_at=None, checks_change=None, due_counts=False)

    cache = StatusCache(build)
    cache.at(T0, state)
    cache.at(T0 + minutes(1), state)
    assert builds == [T0]
    other = State(last_run=CURRENT, not_before=T0 + minutes(3))
    cache.at(T0 + minutes(1), other)
    assert builds == [T0, T0 + minutes(1)], "another state object: built again"
    cache.at(T0 + minutes(2), other)
    assert len(builds) == 2
    cache.at(T0 + minutes(4), other)
    assert len(builds) == 3, "the cooldown ended"
    cache.renew(T0 + minutes(5), state)
    cache.at(T0 + minutes(5), state)
    assert len(builds) == 4, "a template renewed is used"


def test_a_list_of_jobs_answers_each_document_as_of_the_moment_and_follows_every_change() -> None:
    changes = Changes()
    states = {"a": State(current=CURRENT), "b": State(last_run=CURRENT, not_before=T0 + minutes(3)), "c": State()}
    etas = {"a": ETA, "b": None, "c": None}
    dues = {"a": DUE, "b": T0 + minutes(31), "c": None}

    def builder(name: str) -> Callable[[datetime], Template]:
        def build(now: datetime) -> Template:
            given = inputs(dues[name], etas[name], states[name])
            eta = etas[name]
            return template(
                given, now, finish_at=None if eta is None else eta.finish_at, checks_change=None, due_counts=False
            )

        return build

    caches = {name: StatusCache(builder(name), changes) for name in states}
    served = ["a", "b", "c"]
    listed = StatusList(changes)

    def answer(now: datetime) -> bytes:
        return listed.at(now, tuple(served), lambda: [(caches[name], states[name]) for name in served])

    def each(now: datetime) -> bytes:
        docs = [expected(inputs(dues[n], etas[n], states[n]), etas[n], now) for n in served]
        return b"[" + b", ".join(docs) + b"]"

    for offset in [*moments()[::7], minutes(3) - US, minutes(3), minutes(4)]:
        assert answer(T0 + offset) == each(T0 + offset), offset
    states["c"] = State(last_run=CURRENT)  # a change nobody said (a trigger taken, a pid saved): seen at once
    assert answer(T0 + minutes(4)) == each(T0 + minutes(4))
    served.remove("b")
    assert answer(T0 + minutes(5)) == each(T0 + minutes(5)), "another set of jobs"
    assert answer(T0 + minutes(5)) is answer(T0 + minutes(5)), "the same millisecond: the same bytes"
    now = T0 + minutes(6)
    framed = listed.at(now, "framed", lambda: [(caches[n], states[n]) for n in served], b'{"jobs": [', b"]}")
    assert framed == b'{"jobs": ' + each(now) + b"}"
