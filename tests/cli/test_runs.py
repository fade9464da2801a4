"""``runs show RUNID``: the table as a pure function of the steps document and the terminal's width, then real
command lines against a real service whose job reports its steps."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from orchestrator.cli.runs import timeline
from tests.cli.test_cli import run_cli
from tests.support import STEPS_JOB, STEPS_JOB_STEPS, ServiceProcess, job_command, next_status, sse_stream

TOKEN = "s3cret-token"


def step(name: str, start: str, end: str | None, percent: tuple[float, float], **more: Any) -> dict[str, Any]:
    """A step of the document, ``start`` and ``end`` as ``MM:SS.f`` past 10:00 on the day the run ran."""

    def at(clock: str | None) -> str | None:
        return None if clock is None else f"2026-12-07T10:{clock}Z"

    duration = None
    if end is not None:
        duration = round(_seconds(end) - _seconds(start), 3)
    return {
        "name": name,
        "startedAt": at(start),
        "endedAt": at(end),
        "durationSeconds": duration,
        "percentStart": percent[0],
        "percentEnd": percent[1],
        "detail": more.get("detail"),
        "done": more.get("done"),
        "total": more.get("total"),
    }


def _seconds(clock: str) -> float:
    minutes, seconds = clock.split(":")
    return int(minutes) * 60 + float(seconds)


SNAPSHOT = {
    "runId": "20261207T100000Z-3fa9c1",
    "status": "completed",
    "truncated": False,
    "steps": [
        step("Starting...", "00:00.000", "00:00.400", (0, 0)),
        step("Connecting to GitHub", "00:00.400", "00:02.000", (0, 10)),
        step(
            "Fetching GitHub PRs",
            "00:02.000",
            "12:32.500",
            (10, 85),
            detail="repo 15/15: octo/web",
            done=15,
            total=15,
        ),
        step("Writing the snapshot", "12:32.500", "12:47.000", (85, 100)),
    ],
}


@pytest.mark.parametrize(
    ("document", "columns", "expected"),
    [
        pytest.param(
            SNAPSHOT,
            100,
            [
                "Run 20261207T100000Z-3fa9c1: completed, 4 steps",
                "#  Step                  Start   Took  Percent  Detail",
                "1  Starting...            0.0s   0.4s      0→0",
                "2  Connecting to GitHub   0.4s   1.6s     0→10",
                "3  Fetching GitHub PRs    2.0s  12:30    10→85  repo 15/15: octo/web (15/15)",
                "4  Writing the snapshot  12:32  14.5s   85→100",
                "   Total                        12:47    0→100",
            ],
            id="wide",
        ),
        pytest.param(
            # the detail gives way first, down to a few characters; then the names
            SNAPSHOT,
            60,
            [
                "Run 20261207T100000Z-3fa9c1: completed, 4 steps",
                "#  Step                  Start   Took  Percent  Detail",
                "1  Starting...            0.0s   0.4s      0→0",
                "2  Connecting to GitHub   0.4s   1.6s     0→10",
                "3  Fetching GitHub PRs    2.0s  12:30    10→85  repo 15/15…",
                "4  Writing the snapshot  12:32  14.5s   85→100",
                "   Total                        12:47    0→100",
            ],
            id="narrow",
        ),
        pytest.param(
            SNAPSHOT,
            50,
            [
                "Run 20261207T100000Z-3fa9c1: completed, 4 steps",
                "#  Step          Start   Took  Percent  Detail",
                "1  Starting...    0.0s   0.4s      0→0",
                "2  Connecting…    0.4s   1.6s     0→10",
                "3  Fetching Gi…   2.0s  12:30    10→85  repo 15/…",
                "4  Writing the…  12:32  14.5s   85→100",
                "   Total                12:47    0→100",
            ],
            id="narrower",
        ),
        pytest.param(
            {
                "runId": "r1",
                "status": "running",
                "truncated": False,
                "steps": [
                    step("Starting...", "00:00.000", "00:01.000", (0, 0)),
                    step("Fetching GitHub PRs", "00:01.000", None, (10, 45), detail="repo 5/15: octo/api", done=5),
                ],
            },
            80,
            [
                "Run r1: running, 2 steps",
                "#  Step                 Start     Took  Percent  Detail",
                "1  Starting...           0.0s     1.0s      0→0",
                "2  Fetching GitHub PRs   1.0s  running    10→45  repo 5/15: octo/api (5)",
                "   Total so far                   1.0s     0→45",
            ],
            id="running",
        ),
        pytest.param(
            {"runId": "old", "status": "error", "truncated": False, "steps": []},
            80,
            ["Run old: error, no steps recorded (it ran before runs kept steps, or its job reported none)"],
            id="no-steps",
        ),
        pytest.param(
            {
                "runId": "r\x1b[2J",
                "status": "completed",
                "truncated": True,
                "steps": [step("(more steps)", "00:00.000", "00:01.000", (0, 100), detail="\x1b]0;title\x07")],
            },
            80,
            [
                "Run r\\x1b[2J: completed, 1 step (the last, '(more steps)', stands for every later one)",
                "#  Step          Start  Took  Percent  Detail",
                "1  (more steps)   0.0s  1.0s    0→100  \\x1b]0;title\\x07",
                "   Total                1.0s    0→100",
            ],
            id="truncated-and-escapes",
        ),
    ],
)
def test_the_timeline_table(document: dict[str, Any], columns: int, expected: list[str]) -> None:
    lines = timeline(document, columns)
    assert lines == expected
    assert all(len(line) < columns for line in lines[1:])


def test_a_long_name_is_cut_to_the_terminal_and_never_below_a_readable_width() -> None:
    long = {**SNAPSHOT, "steps": [step("x" * 300, "00:00.000", "00:01.000", (0, 100), detail="d" * 300)]}
    for columns in (200, 80, 40):
        rows = timeline(long, columns)[1:]
        assert all(len(line) < columns for line in rows), (columns, rows)
        assert rows[1].split()[1].endswith("\u2026")
    tiny = timeline(long, 10)
    assert tiny[2].split()[1] == "x" * 11 + "\u2026", "a name column is never cut below 12 characters"


# ------------------------------------------------------------------------------------ real command lines
@pytest.fixture
def ran(service_factory: Any) -> tuple[ServiceProcess, str]:
    """A service with a token for reads whose start-up run (of a job that reports steps) has ended."""
    service: ServiceProcess = service_factory(
        "--command", job_command(STEPS_JOB), "--interval", "600", "--token", TOKEN, "--token-for-reads"
    )

    async def first_run_ended() -> dict[str, Any]:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
            events = sse_stream(session, service.url + "/api/snapshot/events")
            return await next_status(events, lambda doc: doc["lastRun"] is not None and not doc["running"])

    return service, str(asyncio.run(first_run_ended())["lastRun"]["runId"])


@pytest.mark.process
def test_runs_show_prints_the_timeline_from_the_server(ran: tuple[ServiceProcess, str], tmp_path: Path) -> None:
    service, run_id = ran
    env = {"SNAPSHOT_TOKEN": TOKEN, "COLUMNS": "72"}
    shown = run_cli("runs", "show", run_id, "--url", service.url, cwd=tmp_path, env=env)
    assert (shown.returncode, shown.stderr) == (0, ""), shown
    lines = shown.stdout.splitlines()
    assert lines[0] == f"Run {run_id}: completed, 4 steps"
    assert lines[1].split() == ["#", "Step", "Start", "Took", "Percent", "Detail"]
    assert [line[3:].split("  ")[0] for line in lines[2:6]] == STEPS_JOB_STEPS
    assert "repo 3/3: octo/r3 (3/3)" in lines[4]
    assert lines[6].split()[0] == "Total" and lines[6].endswith("0\u2192100")
    assert all(len(line) < 72 for line in lines[1:])

    raw = run_cli("runs", "show", run_id, "--json", "--url", service.url, cwd=tmp_path, env=env)
    served = requests.get(
        f"{service.url}/api/snapshot/runs/{run_id}/steps", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert json.loads(raw.stdout) == served.json()


@pytest.mark.process
def test_runs_show_of_an_unknown_run_or_without_the_token_says_so(
    ran: tuple[ServiceProcess, str], tmp_path: Path
) -> None:
    service, run_id = ran
    unknown = run_cli("runs", "show", "no-such-run", "--url", service.url, cwd=tmp_path, env={"SNAPSHOT_TOKEN": TOKEN})
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr == f"No run 'no-such-run' in the history of {service.url}\n"
    refused = run_cli("runs", "show", run_id, "--url", service.url, cwd=tmp_path)
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.startswith(f"snapshot-orchestrator: error: {service.url} answered 401: ")
    assert "give the service's token with --token" in refused.stderr
    service.stop()
    down = run_cli("runs", "show", run_id, "--url", service.url, cwd=tmp_path)
    assert (down.returncode, down.stdout) == (2, "")
    assert down.stderr.startswith(f"snapshot-orchestrator: error: cannot reach {service.url}: ")
