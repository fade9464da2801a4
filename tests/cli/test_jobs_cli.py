"""``--job``, ``status`` of every job and ``reload`` at the command line.

The client logic runs against a small real HTTP server that answers as the service's contract says
(``/api/jobs``, ``/api/runs``, ``/api/jobs/{job}/...``, ``/api/reload``), with status documents made by a real
in-process service of three jobs: the command line is run in this process (``main``), its HTTP is real. Then the
trigger folders of the jobs and the data folder of several jobs, and real services and command lines for what
the service answers already."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.main import main
from orchestrator.cli.statusview import format_overview, format_status
from orchestrator.core.clock import FakeClock
from orchestrator.core.events import RunStatus, Source, Trigger, iso
from orchestrator.core.records import Pause, RunRecord, State
from orchestrator.store.history import HISTORY_FILE_NAME, SqliteHistory
from orchestrator.store.statefile import STATE_FILE_NAME, StateFile
from tests.cli.test_cli import run_cli
from tests.fakes import T0, ScriptedJob, Services, ended, jobs_orchestrator, minutes
from tests.support import PYTHON, ServiceProcess, saved_state
from tests.tinyhttp import TinyServer, tiny_server

TOKEN = "s3cret-token"
JOBS = """
[jobs.snapshot]
command = "true"
interval = 30
[jobs.report]
command = "true"
[jobs.nightly]
command = "true"
cron = "0 3 * * *"
timezone = "UTC"
paused = true
"""
NOT_FOUND = 404


def run(job: str, run_id: str, minute: int, status: RunStatus, source: Source, **more: Any) -> dict[str, Any]:
    """A run's brief document, as ``/api/runs`` lists it."""
    started = T0 - minutes(60 - minute)
    record = RunRecord(
        run_id, (Trigger(source, started, more.pop("reason", "")),), started, status=status, job=job, **more
    )
    return record.to_brief_json()


FAILED_REPORT = {"error": "exited with code 2", "reason": "after snapshot 20260120T092000Z-aaaaaa"}
RUNS = [
    run(
        "report",
        "20260120T093000Z-bbbbbb",
        30,
        RunStatus.ERROR,
        Source.AFTER,
        finished_at=T0 - minutes(29),
        **FAILED_REPORT,
    ),
    run("snapshot", "20260120T092000Z-aaaaaa", 20, RunStatus.COMPLETED, Source.TIMER, finished_at=T0 - minutes(38)),
]


@dataclass
class Contract:
    """What a service of three jobs answers (``status``: each job's status document, from a real service)."""

    status: dict[str, dict[str, Any]]
    default: str = "snapshot"
    runs: list[dict[str, Any]] = field(default_factory=lambda: list(RUNS))
    reload: tuple[int, dict[str, Any]] = (200, {"success": True, "reloaded": True, "summary": "added backup"})

    def answer(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        status, document = self.route(method, path)
        if isinstance(document, bytes):
            return status, {"Content-Type": "text/event-stream"}, document
        return status, {"Content-Type": "application/json"}, json.dumps(document).encode()

    def route(self, method: str, path: str) -> tuple[int, Any]:
        if (method, path) == ("GET", "/api/jobs"):
            return 200, {"jobs": list(self.status.values()), "defaultJob": self.default}
        if (method, path) == ("GET", "/api/runs?limit=10"):
            return 200, {"runs": self.runs, "nextCursor": None}
        if (method, path) == ("POST", "/api/reload"):
            return self.reload
        parts = path.split("/")
        if path.startswith("/api/jobs/") and len(parts) >= 5:
            return self.job_route(method, parts[3], "/".join(parts[4:]))
        return NOT_FOUND, {"success": False, "message": f"Not found: {path}"}

    def job_route(self, method: str, job: str, rest: str) -> tuple[int, Any]:
        if job not in self.status:
            return NOT_FOUND, {"success": False, "message": f"no job named {job!r}"}
        if (method, rest) == ("GET", "status"):
            return 200, self.status[job]
        if (method, rest) == ("GET", "runs?limit=5"):
            return 200, {"runs": [each for each in self.runs if each["job"] == job], "nextCursor": None}
        if method == "POST" and rest in ("pause", "resume"):
            return 200, {"success": True, "message": f"{rest} of {job}", "paused": rest == "pause"}
        if (method, rest) == ("POST", "cancel"):
            return 409, {"success": False, "message": f"no run of {job} is going on"}
        if (method, rest) == ("POST", "trigger"):
            return 202, {"success": True, "message": f"Run of {job} triggered", "queued": False, "requestedAt": iso(T0)}
        if (method, rest) == ("GET", "events"):
            done = run(job, "20260120T100000Z-cccccc", 60, RunStatus.COMPLETED, Source.HTTP, finished_at=T0)
            event = json.dumps({**self.status[job], "lastRun": {**done, "durationSeconds": 5.0}})
            return 200, f"event: status\ndata: {event}\n\n".encode()
        if (method, rest) == ("GET", "runs/20260120T093000Z-bbbbbb/steps") and job == "report":
            return 200, {"runId": "20260120T093000Z-bbbbbb", "status": "error", "truncated": False, "steps": []}
        if method == "GET" and rest.startswith("runs/"):
            return NOT_FOUND, {"success": False, "message": "No run in the history"}
        return NOT_FOUND, {"success": False, "message": f"Not found: /api/jobs/{job}/{rest}"}


@pytest.fixture
async def contract(tmp_path: Path, clock: FakeClock, job: ScriptedJob, services: Services) -> Contract:
    """Status documents of a real service of :data:`JOBS` whose start-up run ended after 2 minutes."""
    service = await services.started(jobs_orchestrator(tmp_path / "service", clock, job, JOBS))
    first = await job.next_start()
    clock.advance(minutes(2))
    first.finish()
    await ended(service, first)
    return Contract({name: unit.status() for name, unit in service.units.items()})


@pytest.fixture
def stub(contract: Contract) -> Iterator[TinyServer]:
    with tiny_server(contract.answer) as server:
        yield server


@dataclass(frozen=True)
class Said:
    code: int
    out: str
    err: str


async def cli(capsys: pytest.CaptureFixture[str], *args: str, server: TinyServer | None = None) -> Said:
    """The command line, in this process (its HTTP is blocking: on a thread of its own)."""
    url = ["--url", f"http://127.0.0.1:{server.port}"] if server is not None else []
    code = await asyncio.to_thread(main, [*args, *url])
    out, err = capsys.readouterr()
    return Said(code, out, err)


# ------------------------------------------------------------------------------------------------ status
async def test_status_shows_every_job_in_a_line_then_the_last_runs_of_them_all(
    stub: TinyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    said = await cli(capsys, "status", server=stub)
    assert (said.code, said.err) == (0, "")
    url = f"http://127.0.0.1:{stub.port}"
    assert said.out.splitlines() == [
        f"Source:   server {url}",
        "Jobs:     3 jobs, the default snapshot",
        "  snapshot  idle, next run in 28 min (2026-01-20T10:30:00.000Z); last run completed at "
        "2026-01-20T10:00:00.000Z",
        "  report    idle, runs when triggered",
        "  nightly   idle; paused since 2026-01-20T10:00:00.000Z: paused in the jobs file",
        "Last runs:",
        "  2026-01-20T09:30:00.000Z  report    error         1:00  after (after snapshot 20260120T092000Z-aaaaaa)"
        " - exited with code 2",
        "  2026-01-20T09:20:00.000Z  snapshot  completed     2:00  timer",
    ]
    assert [seen.path for seen in stub.seen] == ["/api/jobs", "/api/runs?limit=10"]


async def test_status_of_one_job_is_shown_in_full_with_its_name(
    stub: TinyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    said = await cli(capsys, "status", "--job", "report", server=stub)
    assert said.code == 0, said.err
    assert said.out.splitlines()[1:] == [
        "Job:      report",
        "State:    idle; no schedule, runs when triggered",
        "Last runs:",
        "  2026-01-20T09:30:00.000Z  error         1:00  after (after snapshot 20260120T092000Z-aaaaaa)"
        " - exited with code 2",
    ]
    assert [seen.path for seen in stub.seen] == ["/api/jobs/report/status", "/api/jobs/report/runs?limit=5"]
    raw = await cli(capsys, "status", "--job", "nightly", "--json", server=stub)
    assert json.loads(raw.out)["job"] == "nightly"


async def test_a_service_of_one_job_or_older_than_jobs_is_shown_as_before(
    contract: Contract, capsys: pytest.CaptureFixture[str]
) -> None:
    contract.status = {"snapshot": contract.status["snapshot"]}
    with tiny_server(contract.answer) as one:
        said = await cli(capsys, "status", server=one)
    assert said.out.splitlines()[1] == "State:    idle, next snapshot in 28 min (2026-01-20T10:30:00.000Z)"
    assert [seen.path for seen in one.seen] == ["/api/jobs", "/api/snapshot/runs?limit=5"]

    def older(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path == "/api/snapshot/status":
            return 200, {}, json.dumps(contract.status["snapshot"]).encode()
        return NOT_FOUND, {}, json.dumps({"success": False, "message": f"Not found: {path}"}).encode()

    with tiny_server(older) as old:
        said = await cli(capsys, "status", server=old)
    assert said.code == 0 and "State:    idle, next snapshot in 28 min" in said.out
    assert [seen.path for seen in old.seen] == ["/api/jobs", "/api/snapshot/status", "/api/snapshot/runs?limit=5"]


# --------------------------------------------------------------------------------- a job's commands
@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "--json"],
        ["cancel"],
        ["pause", "--reason", "why"],
        ["resume"],
        ["trigger", "--wait"],
        ["runs", "show", "20260120T093000Z-bbbbbb"],
    ],
)
async def test_an_unknown_job_is_one_line_and_exit_2(
    stub: TinyServer, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    said = await cli(capsys, *args, "--job", "nope", server=stub)
    url = f"http://127.0.0.1:{stub.port}"
    assert (said.code, said.out) == (2, "")
    assert said.err == f"snapshot-orchestrator: error: {url} answered 404 for --job nope: no job named 'nope'\n"


async def test_a_jobs_commands_go_to_its_paths_with_the_token(
    stub: TinyServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNAPSHOT_TOKEN", TOKEN)
    paused = await cli(capsys, "pause", "--job", "report", "--reason", "release", server=stub)
    resumed = await cli(capsys, "resume", "--job", "report", server=stub)
    cancelled = await cli(capsys, "cancel", "--job", "report", server=stub)
    assert (paused.code, paused.out, resumed.code, resumed.out) == (0, "pause of report\n", 0, "resume of report\n")
    assert (cancelled.code, cancelled.out) == (1, "Nothing to cancel: no run of report is going on\n")
    assert [(s.method, s.path, s.authorization) for s in stub.seen] == [
        ("POST", "/api/jobs/report/pause", f"Bearer {TOKEN}"),
        ("POST", "/api/jobs/report/resume", f"Bearer {TOKEN}"),
        ("POST", "/api/jobs/report/cancel", f"Bearer {TOKEN}"),
    ]
    assert json.loads(stub.seen[0].body) == {"reason": "release"}


async def test_trigger_wait_follows_a_run_of_the_job(stub: TinyServer, capsys: pytest.CaptureFixture[str]) -> None:
    said = await cli(capsys, "trigger", "--wait", "--job", "report", server=stub)
    assert (said.code, said.out) == (0, "Run 20260120T100000Z-cccccc completed in 0:05\n"), said.err
    assert [(s.method, s.path) for s in stub.seen] == [
        ("POST", "/api/jobs/report/trigger"),
        ("GET", "/api/jobs/report/events"),
    ]


async def test_runs_show_of_a_job_tells_a_run_it_lacks_from_a_job_it_lacks(
    stub: TinyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = await cli(capsys, "runs", "show", "20260120T093000Z-bbbbbb", "--job", "report", server=stub)
    assert shown.code == 0
    assert shown.out.startswith("Run 20260120T093000Z-bbbbbb: error, no steps recorded")
    missing = await cli(capsys, "runs", "show", "20260120T092000Z-aaaaaa", "--job", "report", server=stub)
    url = f"http://127.0.0.1:{stub.port}"
    assert (missing.code, missing.err) == (
        1,
        f"No run '20260120T092000Z-aaaaaa' of job report in the history of {url}\n",
    )
    assert stub.seen[-1].path == "/api/jobs/report/status", "asked whether the job is there"


async def test_reload_says_what_changed_or_why_not(
    contract: Contract, stub: TinyServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNAPSHOT_TOKEN", TOKEN)
    done = await cli(capsys, "reload", server=stub)
    assert (done.code, done.out, done.err) == (0, "Jobs file read again: added backup\n", "")
    why = "jobs.toml: jobs.report.cron: bad cron expression '61 * * * *': minute 61 is out of range (0-59)"
    contract.reload = (409, {"success": False, "message": why})
    refused = await cli(capsys, "reload", server=stub)
    assert (refused.code, refused.out) == (2, "")
    assert refused.err == f"snapshot-orchestrator: error: reload refused: {why}\n"
    assert [(s.method, s.path, s.authorization, s.body) for s in stub.seen] == 2 * [
        ("POST", "/api/reload", f"Bearer {TOKEN}", b"")
    ]


@pytest.mark.parametrize("name", ["Report", "re port", "-x", "a" * 64, "../snapshot"])
async def test_a_name_that_is_no_jobs_is_refused_before_anything_is_sent(
    stub: TinyServer, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    said = await cli(capsys, "status", f"--job={name}", server=stub)
    assert (said.code, said.out, stub.seen) == (2, "", [])
    assert said.err.startswith("snapshot-orchestrator: error: --job must be a job's name: 1 to 63 of a-z, 0-9,")
    assert said.err.count("\n") == 1


# ------------------------------------------------------------------------------------------ trigger files
def files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_file()) if folder.is_dir() else []


async def test_a_trigger_file_for_a_job_goes_into_its_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = (tmp_path / "triggers").resolve()
    where = ["--triggers-dir", str(folder)]
    # No jobs file: a job named is taken for one other than the default; a note while its folder is not there.
    first = await cli(capsys, "trigger", "--job", "report", "--reason", "by name", *where)
    [path] = files(folder / "report")
    assert first.code == 0
    assert first.out == f"A run of job report requested ({path}); it runs as soon as the service takes the file.\n"
    assert first.err.startswith(f"snapshot-orchestrator: note: {folder / 'report'} did not exist: the service makes")
    assert json.loads(path.read_text()) == {"reason": "by name"}
    second = await cli(capsys, "trigger", "--job", "report", *where)
    assert (second.code, second.err, len(files(folder / "report"))) == (0, "", 2)

    # With the jobs file: the default job's go into the triggers folder itself, another's into its own.
    jobs = tmp_path / "jobs.toml"
    jobs.write_text('default-job = "report"\n' + JOBS)
    default = await cli(capsys, "trigger", "--job", "report", "--jobs", str(jobs), *where)
    other = await cli(capsys, "trigger", "--job", "nightly", "--jobs", str(jobs), *where)
    assert (default.code, default.err, other.code, other.err) == (0, "", 0, "")
    assert (len(files(folder)), len(files(folder / "nightly")), len(files(folder / "report"))) == (1, 1, 2)
    unknown = await cli(capsys, "trigger", "--job", "backup", "--jobs", str(jobs), *where)
    assert (unknown.code, unknown.out) == (2, "")
    assert (
        unknown.err
        == f"snapshot-orchestrator: error: {jobs} has no job 'backup'; its jobs: snapshot, report, nightly\n"
    )
    plain = await cli(capsys, "trigger", *where)  # no --job: the default job, as always
    assert (plain.code, len(files(folder))) == (0, 2) and plain.out.startswith("Snapshot requested (")


# ------------------------------------------------------------------------------------------- data folder
async def test_status_from_a_data_folder_of_several_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    snapshot = RunRecord("20260120T092000Z-aaaaaa", (), T0 - minutes(40), RunStatus.COMPLETED, T0 - minutes(38))
    report = RunRecord(
        "20260120T093000Z-bbbbbb", (), T0 - minutes(30), RunStatus.ERROR, T0 - minutes(29), error="boom", job="report"
    )
    states = StateFile(data / STATE_FILE_NAME)
    assert states.job("snapshot").save(State(last_run=snapshot))
    waiting = State(last_run=report, paused=Pause(T0, "release")).with_trigger(Trigger(Source.FILE, T0))
    assert states.job("report").save(waiting)
    history = SqliteHistory(data / HISTORY_FILE_NAME)
    history.record(snapshot)
    history.record(report)
    offline = ["--url", "http://127.0.0.1:9", "--data-dir", str(data)]
    said = await cli(capsys, "status", *offline)
    assert said.code == 0, said.err
    lines = said.out.splitlines()
    assert lines[0].startswith("Source:   data folder (server http://127.0.0.1:9 unreachable: ")
    assert lines[1:] == [
        "Jobs:     2 jobs",
        "  snapshot  service not running; last run completed at 2026-01-20T09:20:00.000Z",
        "  report    service not running; paused since 2026-01-20T10:00:00.000Z: release; 1 trigger(s) queued; "
        "last run error at 2026-01-20T09:30:00.000Z",
        "Last runs:",
        "  2026-01-20T09:30:00.000Z  report    error         1:00  timer - boom",
        "  2026-01-20T09:20:00.000Z  snapshot  completed     2:00  timer",
    ]
    one = await cli(capsys, "status", "--job", "report", *offline)
    paused = "Paused:   since 2026-01-20T10:00:00.000Z: release (automatic runs off; resume to restart them)"
    assert one.out.splitlines()[1:4] == ["Job:      report", "State:    service not running", paused]
    assert one.out.splitlines()[-2:] == ["Last runs:", "  2026-01-20T09:30:00.000Z  error         1:00  timer - boom"]
    raw = await cli(capsys, "status", "--json", *offline)
    assert json.loads(raw.out)["job"] == "snapshot", "--json: the job snapshot's, as before"


# ------------------------------------------------------------------------------------------ real services
@pytest.mark.process
def test_trigger_for_a_job_reaches_that_job_of_a_real_service(
    tmp_path: Path, service_factory: Callable[..., ServiceProcess]
) -> None:
    command = json.dumps([PYTHON, "-c", "print('PROGRESS 50 Halfway', flush=True)"])
    path = tmp_path / "jobs.toml"
    path.write_text(f"[defaults]\ncommand = {command}\n[jobs.snapshot]\ninterval = 600\n[jobs.report]\n")
    service = service_factory("--jobs", str(path))
    said = run_cli("trigger", "--job", "report", "--reason", "by name", "--triggers-dir", "triggers", cwd=tmp_path)
    assert (said.returncode, said.stderr) == (0, ""), "the service made report's folder: no note"
    service.wait_for_log("completed in", 20, count=2)  # the default job's start-up run, and report's
    last = saved_state(service.data_dir, "report")["lastRun"]
    assert (last["trigger"], last["reason"], last["status"]) == ("file", "by name", "completed")


@pytest.mark.process
def test_reload_of_a_service_without_a_jobs_file_is_refused_in_one_line(
    service_factory: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    service = service_factory("--command", "true", "--interval", "600")
    said = run_cli("reload", "--url", service.url, cwd=tmp_path)
    assert (said.returncode, said.stdout) == (2, "")
    assert said.stderr.startswith("snapshot-orchestrator: error: ") and said.stderr.count("\n") == 1


RUNNING = {"progress": 45, "step": "Fetching", "done": 5, "total": 15}


@pytest.mark.parametrize(
    ("doc", "shown"),
    [
        (
            {"running": True, "progress": RUNNING, "eta": {"secondsLeft": 370}, "paused": {"since": "S"}},
            "running, 45%, about 6:10 left: Fetching (5/15); paused since S",
        ),
        ({"running": True, "stopping": "timed out", "progress": {"progress": 40}}, "stopping (timed out), 40%"),
        ({"waiting": True, "pendingTriggers": 1, "nextRunAt": "T"}, "waiting for a run slot; 1 trigger(s) queued"),
        (
            {"nextRunAt": "T", "minutesUntilNextRun": 3, "checks": [{"message": "late \x1b[2J"}, {"message": "x"}]},
            "idle, next run in 3 min (T); warning: late \\x1b[2J (and 1 more)",
        ),
    ],
)
def test_a_jobs_line_says_what_it_does_and_what_is_wrong(doc: dict[str, Any], shown: str) -> None:
    assert format_overview([{"job": "report", **doc}], "snapshot", "x").splitlines()[2] == f"  report  {shown}"
    waiting = format_status({"job": "report", "waiting": True, "nextRunAt": None}, "x", job="report")
    assert "State:    waiting for a run slot (as many runs of other jobs go on as max-parallel allows)" in waiting


@pytest.mark.process
def test_the_job_commands_against_a_real_service_of_several_jobs(
    tmp_path: Path, service_factory: Callable[..., ServiceProcess]
) -> None:
    command = json.dumps([PYTHON, "-c", "print('PROGRESS 50 Halfway', flush=True)"])
    path = tmp_path / "jobs.toml"
    path.write_text(
        f'[defaults]\ncommand = {command}\n[jobs.snapshot]\ninterval = 600\n[jobs.report]\ncron = "0 3 * * *"\n'
    )
    service = service_factory("--jobs", str(path))
    url = ("--url", service.url)
    said = run_cli("trigger", "--job", "report", "--reason", "over http", "--wait", *url, cwd=tmp_path)
    assert said.returncode == 0, said.stderr
    assert run_cli("pause", "--job", "report", "--reason", "release", *url, cwd=tmp_path).returncode == 0
    status = run_cli("status", *url, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[1] == "Jobs:     2 jobs, the default snapshot", status.stdout
    assert [line.split()[0] for line in lines[2:4]] == ["snapshot", "report"], status.stdout
    assert "paused since" in lines[3] and "release" in lines[3] and "paused" not in lines[2]
    assert lines[4] == "Last runs:" and lines[5].split()[1:3] == ["report", "completed"]
    assert lines[5].endswith("http (over http)")

    unknown = run_cli("cancel", "--job", "nightly", *url, cwd=tmp_path)
    assert (unknown.returncode, unknown.stdout, unknown.stderr.count("\n")) == (2, "", 1)
    assert "nightly" in unknown.stderr

    path.write_text(path.read_text() + "[jobs.extra]\n")
    reloaded = run_cli("reload", *url, cwd=tmp_path)
    assert (reloaded.returncode, reloaded.stdout) == (0, "Jobs file read again: added extra; 2 unchanged\n")
    path.write_text(path.read_text() + "typo = 1\n")
    refused = run_cli("reload", *url, cwd=tmp_path)
    assert refused.returncode == 2 and "jobs.extra.typo: unknown key" in refused.stderr
    assert [job["job"] for job in service.get_json("/api/jobs")["jobs"]] == ["snapshot", "report", "extra"]
