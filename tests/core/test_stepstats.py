"""Where the time goes, as tables: runs written as ``name:seconds`` steps back to back from the run's start."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.core.steps import Step
from orchestrator.core.stepstats import RunTimeline, StepStats, StepSummary, is_slow, percentile, summarize
from tests.fakes import T0


def run(run_id: str, *steps: str, duration: float | None = None, offset: float = 0.0) -> RunTimeline:
    """A run of ``steps`` (``"Fetch:12"``) one after another, starting ``offset`` s after its own start;
    its duration is the steps' sum unless given."""
    at = T0 + timedelta(seconds=offset)
    made = []
    for text in steps:
        name, seconds = text.rsplit(":", 1)
        end = at + timedelta(seconds=float(seconds))
        made.append(Step(name, at, end))
        at = end
    total = duration if duration is not None else (at - T0).total_seconds()
    return RunTimeline(run_id, T0, total, tuple(made))


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        pytest.param([], StepSummary((), None, ()), id="no-runs"),
        pytest.param(
            [run("r1", "A:10", "B:30")],
            StepSummary(
                ("r1",), 40.0, (StepStats("A", 1, 10, 10, 0.25, 10, False), StepStats("B", 1, 30, 30, 0.75, 30, False))
            ),
            id="one-run",
        ),
        pytest.param(
            # medians 10 and 30; p90 interpolated between the two highest of three
            [run("r3", "A:12", "B:30"), run("r2", "A:10", "B:20"), run("r1", "A:8", "B:40")],
            StepSummary(
                ("r3", "r2", "r1"),
                42.0,
                (StepStats("A", 3, 10, 11.6, 0.25, 12, False), StepStats("B", 3, 30, 38, 0.75, 30, False)),
            ),
            id="three-runs",
        ),
        pytest.param(
            # the latest run's order first (B before A), whatever earlier runs did
            [run("r2", "B:5", "A:5"), run("r1", "A:5", "B:5")],
            StepSummary(
                ("r2", "r1"), 10.0, (StepStats("B", 2, 5, 5, 0.5, 5, False), StepStats("A", 2, 5, 5, 0.5, 5, False))
            ),
            id="latest-order",
        ),
        pytest.param(
            # names the latest run lacks: after its own, by their median start in the runs that had them (Zeta
            # starts at 10 s in two runs of three, Alpha at 11 s), not by name
            [
                run("r4", "A:10"),
                run("r3", "A:10", "Zeta:1", "Alpha:1"),
                run("r2", "A:10", "Zeta:1", "Alpha:1"),
                run("r1", "A:10", "Alpha:1", "Zeta:1"),
            ],
            StepSummary(
                ("r4", "r3", "r2", "r1"),
                12.0,
                (
                    StepStats("A", 4, 10, 10, 0.8696, 10, False),
                    StepStats("Zeta", 3, 1, 1, 0.0652, None, False),
                    StepStats("Alpha", 3, 1, 1, 0.0652, None, False),
                ),
            ),
            id="missing-names-by-median-start",
        ),
        pytest.param(
            # a name that comes back within a run counts once, its parts added up
            [run("r1", "Fetch:10", "Save:5", "Fetch:15")],
            StepSummary(
                ("r1",),
                30.0,
                (StepStats("Fetch", 1, 25, 25, 0.8333, 25, False), StepStats("Save", 1, 5, 5, 0.1667, 5, False)),
            ),
            id="name-comes-back",
        ),
        pytest.param(
            # runs without steps (recorded before steps, or a silent job) are left out, shares and all
            [run("new", "A:10"), RunTimeline("old", T0, 600.0, ())],
            StepSummary(("new",), 10.0, (StepStats("A", 1, 10, 10, 1.0, 10, False),)),
            id="runs-without-steps-left-out",
        ),
        pytest.param(
            # the run's recorded duration is the denominator (time outside any step counts too)
            [run("r1", "A:10", duration=40.0)],
            StepSummary(("r1",), 40.0, (StepStats("A", 1, 10, 10, 0.25, 10, False),)),
            id="share-of-recorded-duration",
        ),
        pytest.param(
            # no recorded duration: the steps' sum stands in
            [run("r1", "A:10", "B:10", duration=-1)],
            StepSummary(
                ("r1",), 20.0, (StepStats("A", 1, 10, 10, 0.5, 10, False), StepStats("B", 1, 10, 10, 0.5, 10, False))
            ),
            id="no-recorded-duration",
        ),
        pytest.param(
            # no recorded start: the first step's; a step left open (its end never heard) took no time
            [
                RunTimeline(
                    "r1", None, 20.0, (Step("A", T0), Step("B", T0 + timedelta(seconds=5), T0 + timedelta(seconds=20)))
                )
            ],
            StepSummary(
                ("r1",), 20.0, (StepStats("A", 1, 0, 0, 0.0, 0, False), StepStats("B", 1, 15, 15, 0.75, 15, False))
            ),
            id="open-step-no-start",
        ),
        pytest.param(
            [
                run("r4", "A:20", "B:10"),
                run("r3", "A:10", "B:10"),
                run("r2", "A:10", "B:10"),
                run("r1", "A:10", "B:10"),
            ],
            StepSummary(
                ("r4", "r3", "r2", "r1"),
                20.0,
                (StepStats("A", 4, 10, 17, 0.5556, 20, True), StepStats("B", 4, 10, 10, 0.4444, 10, False)),
            ),
            id="latest-slow",
        ),
    ],
)
def test_summarize(runs: list[RunTimeline], expected: StepSummary) -> None:
    assert summarize(runs) == expected


@pytest.mark.parametrize(
    ("latest", "median", "runs", "slow"),
    [
        (16.0, 10.0, 3, True),  # over 1.5x and 6 s over
        (15.0, 10.0, 3, False),  # exactly 1.5x is not over it
        (15.01, 10.0, 3, True),
        (1.9, 1.0, 3, False),  # 1.9x but 0.9 s: noise
        (2.0, 1.0, 3, True),  # 2x and 1 s exactly
        (0.3, 0.1, 50, False),  # 3x, 0.2 s
        (100.0, 10.0, 2, False),  # two runs are no yardstick
        (None, 10.0, 20, False),  # the latest run did not have the step
        (5.0, 0.0, 3, True),  # a step that used to take no time
    ],
)
def test_is_slow(latest: float | None, median: float, runs: int, slow: bool) -> None:
    assert is_slow(latest, median, runs) is slow


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([5.0], 0.9, 5.0),
        ([1.0, 2.0], 0.9, 1.9),
        ([float(n) for n in range(1, 11)], 0.9, 9.1),
        ([10.0, 1.0, 5.0], 0.5, 5.0),  # unsorted input
        ([1.0, 2.0, 3.0], 1.0, 3.0),
    ],
)
def test_percentile(values: list[float], fraction: float, expected: float) -> None:
    assert percentile(values, fraction) == pytest.approx(expected)


def test_the_json_keeps_the_contracts_field_names() -> None:
    summary = summarize([run("r2", "Fetching GitHub PRs:950"), run("r1", "Fetching GitHub PRs:720", "Saving:30")])
    assert summary.to_json() == {
        "runs": 2,
        "runIds": ["r2", "r1"],
        "medianRunSeconds": 850.0,
        "latestRunId": "r2",
        "steps": [
            {
                "name": "Fetching GitHub PRs",
                "runs": 2,
                "medianSeconds": 835.0,
                "p90Seconds": 927.0,
                "share": 0.9824,
                "latestSeconds": 950.0,
                "slow": False,
            },
            {
                "name": "Saving",
                "runs": 1,
                "medianSeconds": 30.0,
                "p90Seconds": 30.0,
                "share": 0.0176,
                "latestSeconds": None,
                "slow": False,
            },
        ],
    }
    assert StepSummary((), None, ()).to_json() == {
        "runs": 0,
        "runIds": [],
        "medianRunSeconds": None,
        "latestRunId": None,
        "steps": [],
    }
