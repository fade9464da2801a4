"""The job as a real subprocess: its environment, progress lines, exit codes, and stopping its whole tree."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.core.events import RunStatus, Source
from orchestrator.core.steps import MAX_DETAIL_CHARS, MAX_NAME_CHARS, Parsed
from orchestrator.core.steps import StepReport as R
from orchestrator.job.linecut import CUT_MARK, MAX_LINE_BYTES
from orchestrator.job.protocol import Pipe, RunContext, parse_progress_line
from orchestrator.job.subprocessjob import SubprocessJob, describe_exit
from tests.support import alive as _alive

PY = sys.executable

BAD_DONE = "done is not a count from 0 to 1000000000000: dropped"
BAD_TOTAL = "total is not a count from 0 to 1000000000000: dropped"


def ctx(tmp_path: Path) -> RunContext:
    return RunContext("run-1", Source.FILE, "because", tmp_path / "progress.json")


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("PROGRESS 45 Fetching GitHub PRs... (5/15 repos)", Parsed(R(45.0, "Fetching GitHub PRs... (5/15 repos)"))),
        ("PROGRESS 12.5% step", Parsed(R(12.5, "step"))),
        ("PROGRESS 100", Parsed(R(100.0))),
        ("  PROGRESS 7 padded  ", Parsed(R(7.0, "padded"))),
        ("PROGRESS 250 beyond", Parsed(R(100.0, "beyond"))),
        ("PROGRESS -3 before", Parsed(R(0.0, "before"))),
        ("progress 45 lower case", None),
        ("PROGRESS abc", None),
        ("Some other output", None),
        ("PROGRESSIVE 45 rock", None),
        # The JSON form: every key optional.
        (
            'PROGRESS {"percent": 45, "step": "Fetching GitHub PRs", "detail": "repo 5/15", "done": 5, "total": 15}',
            Parsed(R(45.0, "Fetching GitHub PRs", "repo 5/15", 5, 15)),
        ),
        ('PROGRESS {"detail": "GET /pulls?page=3"}', Parsed(R(detail="GET /pulls?page=3"))),
        ('PROGRESS {"percent": 12.5}', Parsed(R(12.5))),
        ('PROGRESS {"step": "  padded  "}', Parsed(R(step="padded"))),
        # Bad reports are cut down, never refused whole: what is usable is kept, the rest named once.
        ('PROGRESS {"percent": 45, "colour": "red"}', Parsed(R(45.0), ("unknown key 'colour' ignored",))),
        ('PROGRESS {"percent": "45"}', Parsed(R(), ("percent is not a number: dropped",))),
        ('PROGRESS {"percent": true}', Parsed(R(), ("percent is not a number: dropped",))),
        ('PROGRESS {"step": 7}', Parsed(R(), ("step is not a string: dropped",))),
        (
            'PROGRESS {"done": -1, "total": 15}',
            Parsed(R(total=15), (BAD_DONE,)),
        ),
        ('PROGRESS {"done": 5.5}', Parsed(R(), (BAD_DONE,))),
        ('PROGRESS {"total": 1e300}', Parsed(R(), (BAD_TOTAL,))),
        ('PROGRESS {"done": 9, "total": 3}', Parsed(R(), ("done 9 is more than total 3: counts dropped",))),
        ("PROGRESS {not json}", Parsed(R(), ("a report that is not JSON ignored",))),
        ("PROGRESS " + '{"a": ' * 1200 + "1" + "}" * 1200, Parsed(R(), ("a report that is not JSON ignored",))),
        ('PROGRESS {"step": "' + "x" * 20000 + '"}', Parsed(R(), ("a JSON report of 20012 characters ignored",))),
    ],
)
def test_parse_progress_line(line: str, parsed: Parsed | None) -> None:
    assert parse_progress_line(line) == parsed


def test_long_step_names_and_details_are_cut_and_said() -> None:
    name = "Fetching " + "x" * 5000
    parsed = parse_progress_line(f"PROGRESS 10 {name}")
    assert parsed is not None and parsed.report.step == name[:MAX_NAME_CHARS]
    assert parsed.problems == ("step of 5009 characters cut",)
    parsed = parse_progress_line('PROGRESS {"detail": "' + "d" * 900 + '\\nsecond line"}')
    assert parsed is not None and parsed.report.detail is not None
    assert len(parsed.report.detail) == MAX_DETAIL_CHARS and "\n" not in parsed.report.detail


@pytest.mark.parametrize(
    ("code", "tail", "error"),
    [
        (3, ["a", "b"], "exited with code 3: b\na\nb"),  # the headline, then the lines it came from
        (3, ["boom: could not parse row 17"], "exited with code 3: boom: could not parse row 17"),  # said once
        (-9, [], "killed by SIGKILL"),
        (-99, [], "killed by signal 99"),
        (0, [], "exited with code 0"),
    ],
)
def test_describe_exit(code: int, tail: list[str], error: str) -> None:
    assert describe_exit(code, tail) == error


@pytest.mark.process
async def test_job_gets_its_environment_and_reports_progress(tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    script = (
        "import os\n"
        f"open({str(out)!r}, 'w').write(' '.join(os.environ[k] for k in "
        "('SNAPSHOT_PROGRESS_FILE', 'SNAPSHOT_RUN_ID', 'SNAPSHOT_TRIGGER', 'SNAPSHOT_REASON')))\n"
        "print('PROGRESS 10 one', flush=True)\n"
        "print('hello')\n"
        "print('PROGRESS 90 two', flush=True)\n"
    )
    reports: list[tuple[float | None, str | None]] = []
    result = await SubprocessJob([PY, "-c", script]).run(
        ctx(tmp_path), lambda parsed: reports.append((parsed.report.percent, parsed.report.step))
    )
    assert result.status is RunStatus.COMPLETED and result.exit_code == 0
    assert reports == [(10.0, "one"), (90.0, "two")]
    assert out.read_text() == f"{tmp_path / 'progress.json'} run-1 file because"


@pytest.mark.process
async def test_failure_carries_exit_code_and_stderr_tail(tmp_path: Path) -> None:
    script = "import sys\nfor i in range(30): print('err', i, file=sys.stderr)\nsys.exit(3)"
    result = await SubprocessJob([PY, "-c", script]).run(ctx(tmp_path), lambda parsed: None)
    assert result.status is RunStatus.ERROR and result.exit_code == 3
    assert result.error is not None
    lines = result.error.splitlines()
    assert lines[0] == "exited with code 3: err 29"
    assert lines[1:] == [f"err {i}" for i in range(20, 30)]


@pytest.mark.process
async def test_command_that_cannot_start_is_an_error_not_a_crash(tmp_path: Path) -> None:
    result = await SubprocessJob([str(tmp_path / "missing")]).run(ctx(tmp_path), lambda parsed: None)
    assert result.status is RunStatus.ERROR
    assert result.error is not None and result.error.startswith("cannot start job")


@pytest.mark.process
async def test_huge_lines_are_cut_not_fatal(tmp_path: Path) -> None:
    script = "print('x' * 1_000_000); print('PROGRESS 50 after'); print('y' * 3_000_000, end='', flush=True)"
    reports: list[tuple[float | None, str | None]] = []
    lines: list[tuple[Pipe, str]] = []
    context = replace(ctx(tmp_path), output=lambda pipe, text: lines.append((pipe, text)))
    result = await SubprocessJob([PY, "-c", script]).run(
        context, lambda parsed: reports.append((parsed.report.percent, parsed.report.step))
    )
    assert result.status is RunStatus.COMPLETED
    assert reports == [(50.0, "after")]
    # Four megabytes without a newline between them: two lines of 8 KiB each, marked as cut.
    assert [(pipe, text[0], len(text), text.endswith(CUT_MARK)) for pipe, text in lines] == [
        (Pipe.OUT, "x", MAX_LINE_BYTES + len(CUT_MARK), True),
        (Pipe.OUT, "P", len("PROGRESS 50 after"), False),
        (Pipe.OUT, "y", MAX_LINE_BYTES + len(CUT_MARK), True),
    ]


@pytest.mark.process
async def test_every_line_goes_to_the_output_with_its_pipe(tmp_path: Path) -> None:
    script = "import sys; print('a'); print(''); print('b', file=sys.stderr); print('PROGRESS 5 c', flush=True)"
    lines: list[tuple[Pipe, str]] = []
    context = replace(ctx(tmp_path), output=lambda pipe, text: lines.append((pipe, text)))
    assert (await SubprocessJob([PY, "-c", script]).run(context, lambda parsed: None)).status is RunStatus.COMPLETED
    assert [line for line in lines if line[0] is Pipe.OUT] == [
        (Pipe.OUT, "a"),
        (Pipe.OUT, ""),
        (Pipe.OUT, "PROGRESS 5 c"),
    ]
    assert [line for line in lines if line[0] is Pipe.ERR] == [(Pipe.ERR, "b")]


class PidReport:
    """The job prints ``PROGRESS 1 <pid> <pid>...``; the test waits on that report, not on a timer."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.seen = asyncio.Event()

    def __call__(self, parsed: Parsed) -> None:
        self.pids = [int(p) for p in (parsed.report.step or "").split()]
        self.seen.set()

    async def wait(self) -> list[int]:
        async with asyncio.timeout(10):
            await self.seen.wait()
        return self.pids


@pytest.mark.process
async def test_cancel_stops_the_whole_process_tree(tmp_path: Path) -> None:
    script = 'sleep 1000 & a=$!; sleep 1000 & b=$!; echo "PROGRESS 1 $a $b $$"; wait'
    job = SubprocessJob(["sh", "-c", script], kill_grace=5)
    report = PidReport()
    task = asyncio.create_task(job.run(ctx(tmp_path), report))
    found = await report.wait()
    assert len(found) == 3
    assert all(_alive(pid) for pid in found)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not any(_alive(pid) for pid in found)


@pytest.mark.process
async def test_a_child_that_moved_to_its_own_process_group_is_stopped_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``setpgid`` takes a process out of the job's group but not out of its session: still the job's tree."""
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1000)'], process_group=0)\n"
        "print('PROGRESS 1', child.pid, os.getpid(), flush=True)\n"
        "time.sleep(1000)\n"
    )
    job = SubprocessJob([PY, "-c", script], kill_grace=5)
    report = PidReport()
    task = asyncio.create_task(job.run(ctx(tmp_path), report))
    child, leader = await report.wait()
    assert os.getpgid(child) == child != os.getpgid(leader)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not _alive(child) and not _alive(leader)
    assert not any("ignored SIGTERM" in r.getMessage() for r in caplog.records), "both ended on SIGTERM"


@pytest.mark.process
async def test_a_process_that_left_the_session_is_reported_not_leaked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``setsid`` escapes the job's tree for good: the run ends, the log says what happened, and the pipes the
    escaped process still holds are closed on our side (else two descriptors would leak a run)."""
    script = 'setsid sleep 1000 & echo "PROGRESS 1 $!"'
    job = SubprocessJob(["sh", "-c", script], kill_grace=5)
    report = PidReport()
    fds_before = len(os.listdir("/proc/self/fd"))
    escaped: list[int] = []
    try:
        task = asyncio.create_task(job.run(ctx(tmp_path), report))
        escaped = await report.wait()
        result = await asyncio.wait_for(task, 10)
        assert result.status is RunStatus.COMPLETED
        assert _alive(escaped[0]), "out of reach, as documented"
        assert any("left its session (setsid)" in r.getMessage() for r in caplog.records)
        assert len(os.listdir("/proc/self/fd")) <= fds_before
    finally:
        for pid in escaped:
            os.kill(pid, signal.SIGKILL)


@pytest.mark.process
async def test_a_job_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    script = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('PROGRESS 1', os.getpid(), flush=True)\n"
        "time.sleep(1000)\n"
    )
    job = SubprocessJob([PY, "-c", script], kill_grace=0.3)
    report = PidReport()
    task = asyncio.create_task(job.run(ctx(tmp_path), report))
    [pid] = await report.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not _alive(pid)


@pytest.mark.process
async def test_children_left_behind_after_exit_are_stopped(tmp_path: Path) -> None:
    # The shell exits at once; its background child keeps stdout open.
    script = 'sleep 1000 & echo "PROGRESS 1 $!"; exit 0'
    job = SubprocessJob(["sh", "-c", script], kill_grace=2)
    report = PidReport()
    result = await job.run(ctx(tmp_path), report)
    assert result.status is RunStatus.COMPLETED
    [pid] = report.pids
    assert not _alive(pid)


def test_signal_names_are_known() -> None:
    assert signal.Signals(9).name == "SIGKILL"


@pytest.mark.process
async def test_detached_children_do_not_outlive_the_run(tmp_path: Path) -> None:
    # The child lets go of the job's output, so only a look at the process group finds it.
    script = 'sleep 1000 >/dev/null 2>&1 & echo "PROGRESS 1 $!"; exit 0'
    report = PidReport()
    result = await SubprocessJob(["sh", "-c", script], kill_grace=2).run(ctx(tmp_path), report)
    assert result.status is RunStatus.COMPLETED
    [pid] = report.pids
    assert not _alive(pid)


@pytest.mark.process
async def test_the_job_runs_in_its_folder_with_its_name_and_its_own_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.setenv("SNAPSHOT_TOKEN", "the service's own")
    script = (
        "import json, os\n"
        "keys = ('SNAPSHOT_JOB', 'REPORT_MODE', 'SNAPSHOT_TOKEN')\n"
        "json.dump([os.getcwd(), {k: os.environ.get(k) for k in keys}], open('seen.json', 'w'))\n"
    )
    job = SubprocessJob([PY, "-c", script], cwd=folder, extra_env={"REPORT_MODE": "weekly"})
    context = replace(ctx(tmp_path), job="report")
    result = await job.run(context, lambda parsed: None)
    assert result.status is RunStatus.COMPLETED
    cwd, seen = json.loads((folder / "seen.json").read_text())
    assert cwd == str(folder)
    assert seen == {"SNAPSHOT_JOB": "report", "REPORT_MODE": "weekly", "SNAPSHOT_TOKEN": None}
