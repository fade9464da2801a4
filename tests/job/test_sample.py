"""The bundled sample job: its steps on a fake clock, and as a real subprocess (its lines, --fail, SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest

from orchestrator.job.jobkit import Reporter
from orchestrator.job.sample import REPOS, GitHubError, snapshot
from tests.support import PYTHON

STEPS = ["Connecting to GitHub", "Fetching GitHub PRs", "Computing review statistics", "Writing snapshot"]
KEYS = {"percent", "step", "detail", "done", "total"}
FETCHED = {"percent": 85, "step": "Fetching GitHub PRs"}


def progress(out: str) -> list[dict[str, Any]]:
    """The JSON after ``PROGRESS `` on each progress line of ``out``."""
    return [json.loads(line.removeprefix("PROGRESS ")) for line in out.splitlines() if line.startswith("PROGRESS ")]


def step_names(reports: list[dict[str, Any]]) -> list[str]:
    return [name for name, _ in groupby(report["step"] for report in reports)]


def test_its_steps_are_uneven_and_fetching_reports_each_repository(capsys: pytest.CaptureFixture[str]) -> None:
    """On a fake clock that each sleep moves on: every detail is written, and where the time goes is known."""
    now = [0.0]
    slept: dict[str, float] = {}
    reporter = Reporter(lines=True, clock=lambda: now[0], timer=lambda delay, callback: lambda: None)

    lines: list[dict[str, Any]] = []

    def sleep(seconds: float) -> None:
        lines.extend(progress(capsys.readouterr().out))
        slept[lines[-1]["step"]] = slept.get(lines[-1]["step"], 0) + seconds
        now[0] += seconds

    snapshot(reporter, duration=20, fail=False, sleep=sleep)
    lines.extend(progress(capsys.readouterr().out))
    assert step_names(lines) == STEPS
    assert all(set(line) <= KEYS for line in lines)
    fetching = [line for line in lines if line["step"] == "Fetching GitHub PRs" and "detail" in line]
    details = [f"repo {n}/15: {repo}" for n, repo in enumerate(REPOS, 1)]
    assert [d for d, _ in groupby(line["detail"] for line in fetching)] == details
    assert fetching[-1] == {
        "percent": 85,
        "step": "Fetching GitHub PRs",
        "detail": details[-1],
        "done": 15,
        "total": 15,
    }
    assert {"detail": details[4], "done": 5, "total": 15}.items() <= next(
        line for line in fetching if line.get("done") == 5
    ).items()
    percents = [line["percent"] for line in lines]
    assert percents == sorted(percents) and percents[-1] == 100
    assert lines[-1] == {"percent": 100, "step": "Writing snapshot"}
    assert sum(slept.values()) == pytest.approx(20)
    assert slept["Fetching GitHub PRs"] == pytest.approx(14), "fetching takes most of the run, as in real life"


def test_failing_it_stops_while_fetching_without_claiming_the_steps_end(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = Reporter(lines=True)
    with pytest.raises(GitHubError, match="502 Bad Gateway for octo/docs"):
        snapshot(reporter, duration=0, fail=True, sleep=lambda seconds: None)
    last = progress(capsys.readouterr().out)[-1]
    assert (last["step"], last["detail"], last["done"]) == ("Fetching GitHub PRs", "repo 3/15: octo/docs", 2)
    assert last["percent"] < 85


def run_sample(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSHOT_")}
    return subprocess.run(
        [PYTHON, "-m", "orchestrator.sample_job", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.process
def test_as_a_subprocess_it_prints_json_progress_lines() -> None:
    result = run_sample("--duration", "0.05")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "sample job: run - (manual)"
    assert all(line.startswith("PROGRESS {") for line in lines[1:]), lines
    reports = progress(result.stdout)
    assert all(isinstance(report, dict) and set(report) <= KEYS for report in reports)
    assert step_names(reports) == STEPS
    assert reports[-1] == {"percent": 100, "step": "Writing snapshot"}
    fetched = [report for report in reports if report["step"] == "Fetching GitHub PRs"][-1]
    assert fetched == {**FETCHED, "detail": "repo 15/15: octo/status-page", "done": 15, "total": 15}


@pytest.mark.process
def test_under_the_service_it_still_reports_on_stdout(tmp_path: Path) -> None:
    """The sample shows the line protocol: it leaves the progress file to the service."""
    path = tmp_path / "snapshot_progress.json"
    env = {"SNAPSHOT_PROGRESS_FILE": str(path), "SNAPSHOT_RUN_ID": "r-7", "SNAPSHOT_TRIGGER": "http"}
    result = run_sample("--duration", "0", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "sample job: run r-7 (http)"
    assert progress(result.stdout)[-1] == {"percent": 100, "step": "Writing snapshot"}
    assert not path.exists()


@pytest.mark.process
def test_with_fail_it_exits_1_saying_why() -> None:
    result = run_sample("--duration", "0.05", "--fail")
    assert result.returncode == 1
    assert result.stderr.strip() == "sample job: GitHub answered 502 Bad Gateway for octo/docs"
    last = progress(result.stdout)[-1]
    assert (last["step"], last["detail"]) == ("Fetching GitHub PRs", "repo 3/15: octo/docs")


@pytest.mark.process
def test_sigterm_stops_it_at_once_with_the_status_of_the_signal() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSHOT_")}
    with subprocess.Popen(
        [PYTHON, "-m", "orchestrator.sample_job", "--duration", "600"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith("sample job: run")
        assert proc.stdout.readline().startswith("PROGRESS {")  # it runs: now stop it
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM
        assert "sample job: stopping on SIGTERM" in proc.stderr.read()
