"""``check``: the jobs file (or the flags) checked without starting, each job printed with its next runs; bad
files and refused flags end with one line and exit 2, through the real command line."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from orchestrator.cli.check import describe
from orchestrator.cli.options import refuse_job_options
from orchestrator.cli.parser import build_parser
from orchestrator.config import ConfigError
from orchestrator.jobsfile import JobConfig
from tests.cli.test_cli import run_cli

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 27, 10, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("job", "lines"),
    [
        (
            JobConfig("snapshot", ("python3", "snap shot.py"), interval_minutes=30),
            [
                "snapshot",
                "  command:  python3 'snap shot.py'",
                "  schedule: every 30 minutes; 5 minutes quiet after a manual run",
                "  next:     at start, 2026-03-27T11:30:30+01:00, 2026-03-27T12:00:30+01:00",
            ],
        ),
        (
            JobConfig(
                "report",
                ("report",),
                cron="30 7 * * 1-5",
                timezone="Europe/Berlin",
                after=("snapshot", "index"),
                cooldown_minutes=1,
                cwd=Path("/srv/reports"),
            ),
            [
                "report",
                "  command:  report  (in /srv/reports)",
                "  schedule: cron '30 7 * * 1-5' in Europe/Berlin; also after each completed run of snapshot and "
                "index; 1 minute quiet after a manual run",
                "  next:     2026-03-30T07:30:00+02:00, 2026-03-31T07:30:00+02:00, 2026-04-01T07:30:00+02:00",
            ],
        ),
        (
            JobConfig("nightly", ("b",), cron="0 2 * * *", timezone="America/New_York", paused=True),
            [
                "nightly",
                "  command:  b",
                "  schedule: cron '0 2 * * *' in America/New_York; paused (no automatic runs until resumed); 5 "
                "minutes quiet after a manual run",
            ],
        ),
        (
            JobConfig("backup", ("backup\x1b[2J",), after=("report",)),
            [
                "backup",
                "  command:  'backup\\x1b[2J'",
                "  schedule: none, runs when triggered; also after each completed run of report",
            ],
        ),
    ],
)
def test_each_job_with_its_schedule_and_next_runs(job: JobConfig, lines: list[str]) -> None:
    assert describe(job, now=NOW, zone=BERLIN) == lines


@pytest.mark.parametrize(
    ("argv", "environ", "refused"),
    [
        (["--jobs", "j.toml", "--interval", "5"], {}, "--interval cannot be used with --jobs: set interval in"),
        (["--jobs", "j.toml"], {"SNAPSHOT_COMMAND": "x"}, "SNAPSHOT_COMMAND cannot be used with --jobs: set command"),
        (
            [],
            {"SNAPSHOT_JOBS": "j.toml", "SNAPSHOT_KILL_GRACE": "3"},
            "SNAPSHOT_KILL_GRACE cannot be used with "
            "SNAPSHOT_JOBS: set kill-grace in the jobs file, in a job's table or in [defaults]",
        ),
        (["--notify-url", "https://h.example"], {"SNAPSHOT_JOBS": "j.toml"}, "--notify-url cannot be used with"),
        (["--jobs", "j.toml"], {"SNAPSHOT_NOTIFY_ON": "failure"}, "SNAPSHOT_NOTIFY_ON cannot be used with --jobs"),
        (["--jobs", "j.toml", "--port", "9000", "--keep-runs", "5"], {"SNAPSHOT_TOKEN": "a-good-token"}, None),
        (["--interval", "5"], {"SNAPSHOT_COMMAND": "x", "SNAPSHOT_JOBS": ""}, None),
        (["--jobs", "", "--interval", "5"], {}, None),
    ],
)
def test_per_job_settings_are_refused_with_a_jobs_file(
    argv: list[str], environ: dict[str, str], refused: str | None
) -> None:
    args = build_parser().parse_args(["check", *argv])
    if refused is None:
        refuse_job_options(args, environ)
        return
    with pytest.raises(ConfigError) as caught:
        refuse_job_options(args, environ)
    assert str(caught.value).startswith(refused)


EXAMPLE = """\
max-parallel = 2

[defaults]
cooldown = 2

[jobs.snapshot]
command = ["{python}", "-c", "pass"]
interval = 30

[jobs.newyear]
command = "{python} -c pass"
cron = "0 12 1 1 *"
timezone = "Asia/Tokyo"
after = ["snapshot"]
"""


@pytest.mark.process
def test_check_prints_each_job_and_its_next_runs(tmp_path: Path) -> None:
    (tmp_path / "jobs.toml").write_text(EXAMPLE.replace("{python}", sys.executable))
    result = run_cli("check", "--jobs", "jobs.toml", cwd=tmp_path, env={"TZ": "Europe/Berlin"})
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[0] == "jobs.toml: 2 jobs, the default job snapshot, at most 2 at once"
    assert lines[1:4] == [
        "snapshot",
        f"  command:  {sys.executable} -c pass",
        "  schedule: every 30 minutes; 2 minutes quiet after a manual run",
    ]
    offset = r"\+0[12]:00"  # the machine's zone is TZ's
    assert re.fullmatch(rf"  next:     at start, \S+T\S+{offset}, \S+T\S+{offset}", lines[4]), lines[4]
    year = datetime.now(ZoneInfo("Asia/Tokyo")).year + 1
    assert lines[5:] == [
        "newyear",
        f"  command:  {sys.executable} -c pass",
        "  schedule: cron '0 12 1 1 *' in Asia/Tokyo; also after each completed run of snapshot; 2 minutes quiet "
        "after a manual run",
        f"  next:     {year}-01-01T12:00:00+09:00, {year + 1}-01-01T12:00:00+09:00, {year + 2}-01-01T12:00:00+09:00",
    ]


@pytest.mark.process
def test_check_without_a_jobs_file_checks_the_flags(tmp_path: Path) -> None:
    result = run_cli("check", "--command", "true", "--interval", "0.5", cwd=tmp_path, env={"TZ": "UTC"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:4] == [
        "No jobs file: one job, from the flags and variables",
        "snapshot",
        "  command:  true",
        "  schedule: every 0.5 minutes; 5 minutes quiet after a manual run",
    ]
    assert not (tmp_path / "data").exists() and not (tmp_path / "triggers").exists(), "check starts nothing"
    bad = run_cli("check", "--interval", "-5", cwd=tmp_path)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == "snapshot-orchestrator: error: --interval must be more than zero minutes, got '-5'\n"


GOOD = '[jobs.snapshot]\ncommand = "true"\n'


@pytest.mark.process
@pytest.mark.parametrize(
    ("text", "args", "env", "line"),
    [
        (
            GOOD + '[jobs.report]\ncommand = "true"\ncron = "61 * * * *"\n',
            [],
            {},
            "jobs.toml: jobs.report.cron: bad cron expression '61 * * * *': minute 61 is out of range (0-59)",
        ),
        (
            GOOD + "intervall = 30\n",
            [],
            {},
            "jobs.toml: jobs.snapshot.intervall: unknown key; did you mean 'interval'?",
        ),
        (
            GOOD + 'after = ["report"]\n[jobs.report]\ncommand = "true"\nafter = ["snapshot"]\n',
            [],
            {},
            "jobs.toml: jobs.snapshot.after: a cycle: snapshot -> report -> snapshot (each runs after the next)",
        ),
        (GOOD + "interval = \n", [], {}, "jobs.toml: line 3, column 12: not TOML: invalid value"),
        (
            '[jobs.snapshot]\ncommand = "no-such-program-xyz --flag"\n',
            [],
            {},
            "jobs.toml: jobs.snapshot.command: 'no-such-program-xyz' not found on PATH",
        ),
        (GOOD + 'cwd = "missing"\n', [], {}, "jobs.toml: jobs.snapshot.cwd: missing is not a folder"),
        (GOOD + 'after = ["nobody"]\n', [], {}, "jobs.toml: jobs.snapshot.after: 'nobody' names no job"),
        (
            GOOD + 'interval = 5\ncron = "0 * * * *"\n',
            [],
            {},
            "jobs.toml: jobs.snapshot: interval and cron both given: a job has one schedule at most",
        ),
        (
            '[jobs.Snap]\ncommand = "true"\n',
            [],
            {},
            "jobs.toml: jobs.Snap: a job's name is 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit",
        ),
        (
            GOOD + 'cron = "0 3 * * *"\ntimezone = "Mars/Olympus"\n',
            [],
            {},
            "jobs.toml: jobs.snapshot.timezone: no time zone 'Mars/Olympus' (a tz database name like Europe/Berlin "
            "or UTC)",
        ),
        (
            "max-parallel = 0\n" + GOOD,
            [],
            {},
            "jobs.toml: max-parallel: must be a whole number, 1 or more, got 0",
        ),
        (
            'default-job = "nightly"\n' + GOOD,
            [],
            {},
            "jobs.toml: default-job: 'nightly' names no job (the jobs: snapshot)",
        ),
        (
            GOOD,
            ["--interval", "5"],
            {},
            "--interval cannot be used with --jobs: set interval in the jobs file, in a job's table or in [defaults]",
        ),
        (
            GOOD,
            [],
            {"SNAPSHOT_STALL_TIMEOUT": "3"},
            "SNAPSHOT_STALL_TIMEOUT cannot be used with --jobs: set stall-timeout in the jobs file, in a job's table "
            "or in [defaults]",
        ),
    ],
)
@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_bad_jobs_file_is_one_line_and_exit_2(
    tmp_path: Path, command: str, *, text: str, args: list[str], env: dict[str, str], line: str
) -> None:
    """``check`` and ``serve`` say the same line; ``serve`` before it starts anything."""
    (tmp_path / "jobs.toml").write_text(text)
    result = run_cli(command, "--jobs", "jobs.toml", *args, cwd=tmp_path, env=env)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"snapshot-orchestrator: error: {line}\n"
    assert not (tmp_path / "data").exists() and not (tmp_path / "triggers").exists()


@pytest.mark.process
def test_a_missing_jobs_file_from_the_variable(tmp_path: Path) -> None:
    result = run_cli("check", cwd=tmp_path, env={"SNAPSHOT_JOBS": "nowhere.toml"})
    assert result.returncode == 2
    assert result.stderr == "snapshot-orchestrator: error: nowhere.toml: cannot be read: No such file or directory\n"


@pytest.mark.process
def test_serve_refuses_a_bad_jobs_file_before_it_starts_anything(tmp_path: Path) -> None:
    (tmp_path / "jobs.toml").write_text('[jobs.snapshot]\ncommand = "true"\ninterval = 0\n')
    result = run_cli("serve", "--port", "8765", cwd=tmp_path, env={"SNAPSHOT_JOBS": "jobs.toml"})
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("snapshot-orchestrator: error: jobs.toml: jobs.snapshot.interval:"), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "data").exists(), "nothing was started"
