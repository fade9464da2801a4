"""The helper for Python jobs, alone and through a real service run: report_progress, the steps API (its
coalescing on a fake clock, the progress file and the printed lines it writes), and its command line."""

from __future__ import annotations

import json
import math
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from orchestrator import jobkit
from orchestrator.disk.atomic import write_json_atomic
from orchestrator.job import jobkit as kit_module
from orchestrator.jobkit import Report, Reporter, count, detail, report_progress, step
from tests.support import PYTHON, REPO, job_command, next_status, sse_stream


@pytest.fixture(autouse=True)
def fresh_default_reporter() -> Iterator[None]:
    """Each test starts with no step said (the module's functions share one reporter per process)."""
    jobkit.default_reporter.cache_clear()
    yield
    jobkit.default_reporter.cache_clear()


def test_without_the_service_it_prints_a_progress_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SNAPSHOT_PROGRESS_FILE", raising=False)
    report_progress(45, "Fetching GitHub PRs... (5/15 repos)")
    assert capsys.readouterr().out == "PROGRESS 45 Fetching GitHub PRs... (5/15 repos)\n"


def test_it_writes_the_file_atomically_keeping_what_the_service_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "snapshot_progress.json"
    started = {"status": "running", "startedAt": "2026-01-20T10:00:00.000Z", "runId": "r-1", "trigger": "file"}
    write_json_atomic(path, {**started, "step": "Starting...", "progress": 0})
    monkeypatch.setenv("SNAPSHOT_PROGRESS_FILE", str(path))
    monkeypatch.setenv("SNAPSHOT_RUN_ID", "r-1")
    report_progress(150, "over the top")
    assert json.loads(path.read_text()) == {**started, "step": "over the top", "progress": 100}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp", "snapshot_progress.json"]
    assert list((tmp_path / ".tmp").iterdir()) == [], "no temp file left behind"


def test_nothing_of_an_older_run_is_carried_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "snapshot_progress.json"
    old = {"status": "error", "runId": "r-0", "error": "exited with code 3", "exitCode": 3, "startedAt": "x"}
    write_json_atomic(path, old)
    monkeypatch.setenv("SNAPSHOT_PROGRESS_FILE", str(path))
    monkeypatch.setenv("SNAPSHOT_RUN_ID", "r-1")
    report_progress(5, "fresh")
    assert json.loads(path.read_text()) == {"status": "running", "step": "fresh", "progress": 5, "runId": "r-1"}


@pytest.mark.parametrize("lie", ["fifo", "nested-too-deep", "huge-number", "folder-symlink"])
def test_a_lying_progress_file_neither_blocks_nor_breaks_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lie: str
) -> None:
    path = tmp_path / "snapshot_progress.json"
    if lie == "fifo":
        os.mkfifo(path)  # no writer: a blocking open would wait forever
    elif lie == "nested-too-deep":
        path.write_text("[" * 100_000)
    elif lie == "huge-number":
        path.write_text('{"runId": ' + "9" * 5000 + "}")
    else:
        path.symlink_to(tmp_path)
    monkeypatch.setenv("SNAPSHOT_PROGRESS_FILE", str(path))
    monkeypatch.setenv("SNAPSHOT_RUN_ID", "r-1")
    report_progress(5, "still going")
    assert json.loads(path.read_text()) == {"status": "running", "step": "still going", "progress": 5, "runId": "r-1"}


@pytest.mark.process
async def test_a_job_writing_the_file_itself_shows_up_live(service_factory: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    # The job reports through the helper, then blocks on the FIFO until the test has seen the report.
    script = (
        "from orchestrator.jobkit import report_progress\n"
        "report_progress(33, 'written by the job')\n"
        f"open({str(gate)!r}).read()\n"
    )
    service = service_factory("--command", job_command(script), "--interval", "60")
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        doc = await next_status(events, lambda d: d["progress"]["step"] == "written by the job", timeout=5)
        assert doc["running"] is True
        shown = {key: doc["progress"][key] for key in ("status", "step", "progress", "detail")}
        assert shown == {"status": "running", "step": "written by the job", "progress": 33, "detail": None}
        assert doc["progress"]["stepStartedAt"] is not None, "the runner keeps the step the job wrote, and its start"
        file_doc = json.loads((service.data_dir / "snapshot_progress.json").read_text())
        assert file_doc["runId"] == doc["currentRun"]["runId"]
        assert file_doc["startedAt"] == doc["currentRun"]["startedAt"]
        subprocess.run([PYTHON, "-c", f"open({str(gate)!r}, 'w').close()"], check=True, timeout=10)
        done = await next_status(events, lambda d: not d["running"])
        assert {k: done["progress"][k] for k in ("status", "step", "progress")} == {
            "status": "completed",
            "step": "Completed",
            "progress": 100,
        }
        assert done["lastRun"]["step"] == "written by the job", "the run's last step, whoever reported it"


def test_a_temp_folder_swapped_for_a_symlink_is_not_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``.tmp`` planted as a symlink to another folder: the job's temp file must not be made there (inotify on
    that folder sees every creation; a last file of our own marks the end of what there is to see)."""
    data, victim = tmp_path / "data", tmp_path / "victim"
    data.mkdir()
    victim.mkdir()
    (data / ".tmp").symlink_to(victim, target_is_directory=True)
    seen: list[str] = []
    done = threading.Event()

    class Handler(FileSystemEventHandler):
        def on_created(self, event: FileSystemEvent) -> None:
            name = os.path.basename(os.fsdecode(event.src_path))
            if name == "end-of-test":
                done.set()
            else:
                seen.append(name)

    observer = Observer()
    observer.schedule(Handler(), os.fspath(victim), recursive=False)
    observer.start()
    try:
        monkeypatch.setenv("SNAPSHOT_PROGRESS_FILE", str(data / "snapshot_progress.json"))
        monkeypatch.setenv("SNAPSHOT_RUN_ID", "r-1")
        report_progress(5, "past the link")
        (victim / "end-of-test").touch()
        assert done.wait(10), "inotify saw the last file"
    finally:
        observer.stop()
        observer.join(timeout=5)
    assert seen == [], "temp files made in the link's target"
    assert json.loads((data / "snapshot_progress.json").read_text())["step"] == "past the link"
    assert (data / ".tmp").is_symlink(), "the job leaves the link to the service (which replaces it)"
    assert [p.name for p in data.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()] == []


# ------------------------------------------------------------------------------------------------ steps
class Ticks:
    """A monotonic clock that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Timers:
    """Timers that fire only when the test says so (``run_until``), each at the time it was set for."""

    ticks: Ticks
    due: list[tuple[float, Callable[[], None]]] = field(default_factory=list)
    started: int = 0

    def __call__(self, delay: float, callback: Callable[[], None]) -> Callable[[], None]:
        entry = (self.ticks.now + delay, callback)
        self.due.append(entry)
        self.started += 1
        return lambda: self.due.remove(entry) if entry in self.due else None

    def run_until(self, now: float) -> None:
        for entry in sorted(self.due, key=lambda e: e[0]):
            if entry[0] <= now and entry in self.due:
                self.ticks.now = entry[0]
                self.due.remove(entry)
                entry[1]()
        self.ticks.now = max(self.ticks.now, now)


@dataclass
class Kit:
    reporter: Reporter
    ticks: Ticks
    timers: Timers


@pytest.fixture
def kit(monkeypatch: pytest.MonkeyPatch) -> Kit:
    """The module's functions on a fake clock and fake timers."""
    ticks = Ticks()
    timers = Timers(ticks)
    reporter = Reporter(clock=ticks, timer=timers)
    monkeypatch.setattr(kit_module, "default_reporter", lambda: reporter)
    monkeypatch.delenv("SNAPSHOT_PROGRESS_FILE", raising=False)
    return Kit(reporter, ticks, timers)


def said(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The JSON of each ``PROGRESS`` line printed since the last look."""
    lines = capsys.readouterr().out.splitlines()
    assert all(line.startswith("PROGRESS {") for line in lines), lines
    return [json.loads(line.removeprefix("PROGRESS ")) for line in lines]


@pytest.mark.parametrize(
    ("report", "doc", "line"),
    [
        (Report(), {}, "PROGRESS {}"),
        (Report(45.0, "Fetching"), {"percent": 45, "step": "Fetching"}, 'PROGRESS {"percent": 45, "step": "Fetching"}'),
        (Report(45, "Fetching"), {"percent": 45, "step": "Fetching"}, 'PROGRESS {"percent": 45, "step": "Fetching"}'),
        (
            Report(31.67, "Fetching GitHub PRs", "repo 5/15: octo/api", 5, 15),
            {"percent": 31.67, "step": "Fetching GitHub PRs", "detail": "repo 5/15: octo/api", "done": 5, "total": 15},
            'PROGRESS {"percent": 31.67, "step": "Fetching GitHub PRs", "detail": "repo 5/15: octo/api", "done": 5,'
            ' "total": 15}',
        ),
        (Report(step="a\nb", detail="caf\u00e9"), {"step": "a\nb", "detail": "caf\u00e9"}, None),
    ],
)
def test_a_report_as_json_and_as_a_line(report: Report, doc: dict[str, Any], line: str | None) -> None:
    assert report.to_json() == doc
    printed = report.line()
    assert "\n" not in printed and printed.isascii(), "one line, whatever the job's locale"
    assert json.loads(printed.removeprefix("PROGRESS ")) == doc
    if line is not None:
        assert printed == line
    assert Report(45.0, "Fetching GitHub PRs... (5/15 repos)").line(plain=True) == (
        "PROGRESS 45 Fetching GitHub PRs... (5/15 repos)"
    )


def test_outside_the_service_steps_details_and_counts_are_printed_as_json_lines(
    kit: Kit, capsys: pytest.CaptureFixture[str]
) -> None:
    fetching = "Fetching GitHub PRs"
    with step(fetching, percent=10, end=40, total=3) as s:
        kit.ticks.now += 1
        s.detail("repo 1/3: octo/api")
        kit.ticks.now += 1
        s.advance()
        kit.ticks.now += 1
        detail("repo 2/3: octo/web")  # the module's functions apply to the current step
        kit.ticks.now += 1
        count(2)
    kit.ticks.now += 1
    step("Writing snapshot")
    kit.ticks.now += 1
    count(5, 10, percent=97.5)
    assert said(capsys) == [
        {"percent": 10, "step": fetching, "done": 0, "total": 3},
        {"percent": 10, "step": fetching, "detail": "repo 1/3: octo/api", "done": 0, "total": 3},
        {"percent": 20, "step": fetching, "detail": "repo 1/3: octo/api", "done": 1, "total": 3},
        {"percent": 20, "step": fetching, "detail": "repo 2/3: octo/web", "done": 1, "total": 3},
        {"percent": 30, "step": fetching, "detail": "repo 2/3: octo/web", "done": 2, "total": 3},
        {"percent": 40, "step": fetching, "detail": "repo 2/3: octo/web", "done": 2, "total": 3},  # its end
        {"percent": 40, "step": "Writing snapshot"},  # a new step: no detail, no counts, the percent stays
        {"percent": 97.5, "step": "Writing snapshot", "done": 5, "total": 10},
    ]
    assert kit.timers.started == 0, "every report came after the window: none waited"


def test_a_burst_of_details_is_coalesced_and_the_latest_always_lands(
    kit: Kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10,000 details a second, for a second: about one file write per 50 ms, and the last one written."""
    path = tmp_path / "snapshot_progress.json"
    monkeypatch.setenv("SNAPSHOT_PROGRESS_FILE", str(path))
    monkeypatch.setenv("SNAPSHOT_RUN_ID", "r-1")
    written: list[dict[str, Any]] = []
    real_write = kit_module._write_file

    def spy(target: Path, report: Report) -> None:
        real_write(target, report)
        written.append(json.loads(target.read_text()))

    monkeypatch.setattr(kit_module, "_write_file", spy)
    start = kit.ticks.now
    s = step("Fetching GitHub PRs", percent=5, end=85, total=10_000)
    for n in range(1, 10_001):
        kit.timers.run_until(start + n / 10_000)
        s.detail(f"item {n}")
        s.count(n)
    assert kit.timers.due, "the last details wait for the end of their window"
    kit.timers.run_until(start + 1.05)
    assert 19 <= len(written) <= 22, len(written)
    assert kit.timers.started <= 21, "one timer per window, not one per detail"
    first = {"status": "running", "step": "Fetching GitHub PRs", "progress": 5, "runId": "r-1"}
    assert written[0] == {**first, "done": 0, "total": 10_000}
    assert written[-1] == {**first, "progress": 85, "detail": "item 10000", "done": 10_000, "total": 10_000}
    assert json.loads(path.read_text()) == written[-1]
    assert list((tmp_path / ".tmp").iterdir()) == [], "no temp file left behind"


def test_a_steps_start_and_end_are_written_at_once_inside_the_window(
    kit: Kit, capsys: pytest.CaptureFixture[str]
) -> None:
    with step("Computing review statistics", percent=85, end=95) as s:
        s.detail("312 pull requests")  # the clock has not moved: this one waits
        assert said(capsys) == [{"percent": 85, "step": "Computing review statistics"}]
        assert len(kit.timers.due) == 1
    # The end is written at once, with the detail that was waiting; its timer is cancelled.
    assert said(capsys) == [{"percent": 95, "step": "Computing review statistics", "detail": "312 pull requests"}]
    assert kit.timers.due == []
    step("Writing snapshot")
    assert said(capsys) == [{"percent": 95, "step": "Writing snapshot"}]


def test_a_new_step_first_writes_the_last_detail_of_the_one_before(
    kit: Kit, capsys: pytest.CaptureFixture[str]
) -> None:
    step("Fetching GitHub PRs", percent=5)
    detail("repo 15/15: octo/status-page")
    step("Computing review statistics", percent=85)
    assert said(capsys) == [
        {"percent": 5, "step": "Fetching GitHub PRs"},
        {"percent": 5, "step": "Fetching GitHub PRs", "detail": "repo 15/15: octo/status-page"},
        {"percent": 85, "step": "Computing review statistics"},
    ]


def test_a_step_left_by_an_exception_writes_its_latest_but_not_its_end(
    kit: Kit, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConnectionError), step("Fetching GitHub PRs", percent=5, end=85, total=15) as s:
        s.detail("repo 3/15: octo/docs")
        raise ConnectionError("GitHub answered 502")
    assert said(capsys)[-1] == {
        "percent": 5,
        "step": "Fetching GitHub PRs",
        "detail": "repo 3/15: octo/docs",
        "done": 0,
        "total": 15,
    }


def test_a_step_that_is_no_longer_current_leaves_the_new_one_alone(
    kit: Kit, capsys: pytest.CaptureFixture[str]
) -> None:
    with step("outer", percent=10, end=50):
        step("inner", percent=20)
    assert said(capsys) == [{"percent": 10, "step": "outer"}, {"percent": 20, "step": "inner"}]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: step("x" * 1000, percent=150), {"percent": 100, "step": "x" * 200}),
        (lambda: step("s", percent=math.nan), {"percent": 0, "step": "s"}),
        (lambda: step("s", percent=-5, total=-3), {"percent": 0, "step": "s", "done": 0, "total": 0}),
        (lambda: detail("d" * 10_000, percent=math.inf), {"percent": 100, "detail": "d" * 500}),
        (lambda: count(-1, 10, percent=33.3333), {"percent": 33.33, "done": 0, "total": 10}),
    ],
)
def test_values_are_kept_in_range_and_texts_cut(
    kit: Kit, capsys: pytest.CaptureFixture[str], call: Callable[[], object], expected: dict[str, Any]
) -> None:
    call()
    assert said(capsys) == [expected]


def test_under_the_service_the_file_carries_detail_and_counts_and_keeps_what_the_service_wrote(
    kit: Kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "snapshot_progress.json"
    started = {"status": "running", "startedAt": "2026-01-20T10:00:00.000Z", "runId": "r-1", "trigger": "timer"}
    write_json_atomic(path, {**started, "step": "Starting...", "progress": 0})
    monkeypatch.setenv("SNAPSHOT_PROGRESS_FILE", str(path))
    monkeypatch.setenv("SNAPSHOT_RUN_ID", "r-1")
    detail("warming up")  # before any step: the service's step and the percent stay
    assert json.loads(path.read_text()) == {**started, "step": "Starting...", "progress": 0, "detail": "warming up"}
    kit.ticks.now += 1
    with step("Fetching GitHub PRs", percent=5, end=85, total=15) as s:
        kit.ticks.now += 1
        s.detail("repo 5/15: octo/sdk-python")
        kit.ticks.now += 1
        s.count(5)
        assert json.loads(path.read_text()) == {
            **started,
            "step": "Fetching GitHub PRs",
            "progress": 31.67,
            "detail": "repo 5/15: octo/sdk-python",
            "done": 5,
            "total": 15,
        }
        report_progress(50, "Fetching GitHub PRs")  # the same name goes on with the same step
        assert json.loads(path.read_text())["detail"] == "repo 5/15: octo/sdk-python"
    report_progress(90, "Writing snapshot")  # a new one starts bare, as before
    assert json.loads(path.read_text()) == {**started, "step": "Writing snapshot", "progress": 90}
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_report_progress_prints_the_plain_line_even_inside_a_step(kit: Kit, capsys: pytest.CaptureFixture[str]) -> None:
    step("Fetching GitHub PRs", total=15)
    capsys.readouterr()
    report_progress(45, "Fetching GitHub PRs")
    assert capsys.readouterr().out == "PROGRESS 45 Fetching GitHub PRs\n"


def test_the_real_timer_writes_the_waiting_detail_after_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNAPSHOT_PROGRESS_FILE", str(tmp_path / "snapshot_progress.json"))
    landed = threading.Event()
    real_write = kit_module._write_file

    def spy(target: Path, report: Report) -> None:
        real_write(target, report)
        if report.detail == "the last one":
            landed.set()

    monkeypatch.setattr(kit_module, "_write_file", spy)
    reporter = Reporter(every=0.02)
    reporter.step("Fetching GitHub PRs")
    reporter.detail("the first one")
    reporter.detail("the last one")
    assert landed.wait(10), "written by the timer's thread, with nothing else said"
    assert json.loads((tmp_path / "snapshot_progress.json").read_text())["detail"] == "the last one"


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["45", "Fetching", "GitHub", "PRs... (5/15 repos)"], "PROGRESS 45 Fetching GitHub PRs... (5/15 repos)"),
        (
            ["--detail", "repo 5/15: octo/api", "--done", "5", "--total", "15", "40", "Fetching GitHub PRs"],
            'PROGRESS {"percent": 40, "step": "Fetching GitHub PRs", "detail": "repo 5/15: octo/api", "done": 5,'
            ' "total": 15}',
        ),
    ],
)
def test_the_command_line(kit: Kit, capsys: pytest.CaptureFixture[str], argv: list[str], line: str) -> None:
    assert jobkit.main(argv) == 0
    assert capsys.readouterr().out == line + "\n"


@pytest.mark.process
def test_the_command_line_writes_the_file_under_the_service(tmp_path: Path) -> None:
    path = tmp_path / "snapshot_progress.json"
    env = {**os.environ, "SNAPSHOT_PROGRESS_FILE": str(path), "SNAPSHOT_RUN_ID": "r-1"}
    args = ["--detail", "repo 5/15", "--done", "5", "--total", "15", "40", "Fetching", "GitHub", "PRs"]
    result = subprocess.run(
        [PYTHON, "-m", "orchestrator.jobkit", *args], env=env, capture_output=True, text=True, timeout=20, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert json.loads(path.read_text()) == {
        "status": "running",
        "step": "Fetching GitHub PRs",
        "progress": 40,
        "runId": "r-1",
        "detail": "repo 5/15",
        "done": 5,
        "total": 15,
    }


@pytest.mark.process
def test_a_copied_jobkit_writes_the_waiting_detail_at_exit(tmp_path: Path) -> None:
    """The file alone, copied next to a job, as the module docstring promises; a window of an hour, so only the
    exit can write the last detail."""
    (tmp_path / "jobkit.py").write_text((REPO / "orchestrator" / "job" / "jobkit.py").read_text())
    script = (
        "from jobkit import Reporter\n"
        "reporter = Reporter(lines=True, every=3600)\n"
        "s = reporter.step('Fetching GitHub PRs', 5, total=15)\n"
        "for n in range(1, 16):\n"
        "    s.detail(f'repo {n}/15')\n"
        "    s.advance()\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "SNAPSHOT_PROGRESS_FILE"}
    result = subprocess.run(
        [PYTHON, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=20, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line.removeprefix("PROGRESS ")) for line in result.stdout.splitlines()]
    assert lines == [
        {"percent": 5, "step": "Fetching GitHub PRs", "done": 0, "total": 15},
        {"percent": 5, "step": "Fetching GitHub PRs", "detail": "repo 15/15", "done": 15, "total": 15},
    ]
