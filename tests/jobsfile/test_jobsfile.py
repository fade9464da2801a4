"""The jobs file: what a good one says, and a table of bad ones, each with its one line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from orchestrator.config import JobSettings, Settings
from orchestrator.core.calendar import CronSchedule
from orchestrator.core.schedule import Schedule
from orchestrator.jobsfile import (
    JobConfig,
    JobsFile,
    JobsFileError,
    job_from_settings,
    load_jobs_file,
    local_zone,
    parse_jobs,
    timing_of,
)

FILE = Path("jobs.toml")
EXAMPLE = """\
default-job = "snapshot"            # optional; else the first [jobs.*] table
max-parallel = 2                    # optional; runs of different jobs at once (default: no limit)

[defaults]                          # optional; any per-job key
cooldown = 5
notify-url = ["https://hooks.example.com/snap"]

[jobs.snapshot]
command = ["python3", "snapshot.py"]   # an argument list, or a string split like a shell would (never run by a shell)
interval = 30                          # minutes, as --interval
cwd = "/srv/snapshot"
env = { GITHUB_TOKEN_FILE = "/run/secrets/gh" }
timeout = 60
stall-timeout = 10
kill-grace = 10

[jobs.report]
command = "python3 report.py"
cron = "30 7 * * 1-5"                  # a calendar schedule instead of an interval
timezone = "Europe/Berlin"             # default: the machine's local zone
after = ["snapshot"]                   # also run after each completed run of these jobs
notify-url = []                        # a job's list replaces the defaults' list
"""
GOOD = '[jobs.snapshot]\ncommand = ["python3", "snapshot.py"]\n'


def test_the_example_of_the_readme() -> None:
    assert parse_jobs(EXAMPLE, FILE) == JobsFile(
        FILE,
        default_job="snapshot",
        max_parallel=2,
        jobs=(
            JobConfig(
                "snapshot",
                ("python3", "snapshot.py"),
                interval_minutes=30,
                cooldown_minutes=5,
                timeout_minutes=60,
                stall_timeout_minutes=10,
                kill_grace_seconds=10,
                cwd=Path("/srv/snapshot"),
                env={"GITHUB_TOKEN_FILE": "/run/secrets/gh"},
                notify_urls=("https://hooks.example.com/snap",),
            ),
            JobConfig(
                "report",
                ("python3", "report.py"),
                cron="30 7 * * 1-5",
                timezone="Europe/Berlin",
                cooldown_minutes=5,
                after=("snapshot",),
                notify_urls=(),
            ),
        ),
    )


def test_the_readme_shows_the_example_as_it_is_tested() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert EXAMPLE in readme


def test_defaults_and_what_a_job_says_itself() -> None:
    text = """
        [defaults]
        interval = 10
        env = { A = "1", B = "2" }
        notify-on = ["failure"]
        timezone = "Asia/Tokyo"
        paused = true

        [jobs.first]
        command = "run --all 'two words'"

        [jobs.second]
        command = ["run"]
        cron = "0 3 * * *"
        env = { C = "3" }
        paused = false

        [jobs.third]
        command = ["run"]
        after = ["first", "second", "first"]
    """
    jobs = parse_jobs(text, Path("/etc/snap/jobs.toml"))
    first, second, third = jobs.jobs
    assert jobs.default_job == "first" and jobs.max_parallel is None
    assert first.command == ("run", "--all", "two words"), "split like a shell, run without one"
    assert (first.interval_minutes, first.cron, first.paused) == (10, None, True)
    assert dict(first.env) == {"A": "1", "B": "2"} and first.notify_on == ("failure",)
    assert (second.interval_minutes, second.cron, second.timezone) == (None, "0 3 * * *", "Asia/Tokyo"), (
        "a job's own cron replaces the default interval"
    )
    assert dict(second.env) == {"C": "3"} and second.paused is False, "a job's table replaces the default's"
    assert third.after == ("first", "second") and third.interval_minutes == 10
    assert (first.notify_urls, first.cooldown_minutes, first.kill_grace_seconds) == (None, 5, 10)


@pytest.mark.parametrize(
    ("file", "cwd", "expected"),
    [
        ("/etc/snap/jobs.toml", "reports", Path("/etc/snap/reports")),
        ("jobs.toml", "reports", Path("reports")),
        ("conf/jobs.toml", "../work", Path("conf/../work")),
        ("/etc/snap/jobs.toml", "/srv/x", Path("/srv/x")),
    ],
)
def test_a_relative_cwd_is_the_files_folders(file: str, cwd: str, expected: Path) -> None:
    [job] = parse_jobs(f'[jobs.a]\ncommand = "x"\ncwd = "{cwd}"\n', Path(file)).jobs
    assert job.cwd == expected


def test_a_job_without_a_schedule_runs_on_triggers_only() -> None:
    [job] = parse_jobs('[jobs.backup]\ncommand = "backup"\n', FILE).jobs
    assert (job.interval_minutes, job.cron) == (None, None)
    assert timing_of(job) is None


def test_each_job_has_its_timing() -> None:
    start = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    snapshot, report = parse_jobs(EXAMPLE, FILE).jobs
    assert timing_of(snapshot) == Schedule(timedelta(minutes=30), timedelta(minutes=5))
    calendar = timing_of(report, since=start)
    assert calendar == CronSchedule("30 7 * * 1-5", ZoneInfo("Europe/Berlin"), timedelta(minutes=5), start)
    assert calendar.next_run_at(last_run_at=None, not_before=None, now=start) == datetime(
        2026, 3, 30, 5, 30, tzinfo=UTC
    )


def test_the_one_job_of_the_flags() -> None:
    settings = Settings(job=JobSettings(command=("job",), interval_minutes=7, cooldown_minutes=1, timeout_minutes=3))
    job = job_from_settings(settings)
    assert job == JobConfig("snapshot", ("job",), interval_minutes=7, cooldown_minutes=1, timeout_minutes=3)
    assert (job.timeout, job.stall_timeout, job.notify_urls) == (timedelta(minutes=3), None, None)


@pytest.mark.parametrize(
    ("tz", "expected"),
    [("Asia/Tokyo", "Asia/Tokyo"), (":Europe/Berlin", "Europe/Berlin"), ("CET-1CEST", None), ("", None)],
)
def test_the_machines_zone(monkeypatch: pytest.MonkeyPatch, tz: str, expected: str | None) -> None:
    monkeypatch.setenv("TZ", tz)
    zone = local_zone()
    if expected is not None:
        assert zone == ZoneInfo(expected)
    else:  # not a zone's name: what /etc/localtime is, with its rules
        assert zone.utcoffset(datetime(2026, 1, 1)) is not None


BAD = [
    ("colour = 1\n" + GOOD, "colour: unknown key (known here: default-job, max-parallel, defaults, jobs)"),
    (GOOD + "intervall = 30\n", "jobs.snapshot.intervall: unknown key; did you mean 'interval'?"),
    (GOOD + "interval = -5\n", "jobs.snapshot.interval: must be more than zero minutes, got -5"),
    (GOOD + "interval = 0\n", "jobs.snapshot.interval: must be more than zero minutes, got 0"),
    (GOOD + 'interval = "30"\n', "jobs.snapshot.interval: must be a number of minutes, got '30'"),
    (GOOD + "interval = nan\n", "jobs.snapshot.interval: must be a number of minutes, got nan"),
    (GOOD + "interval = true\n", "jobs.snapshot.interval: must be a number of minutes, got true"),
    (GOOD + "interval = 525601\n", "jobs.snapshot.interval: must be at most 525600 minutes (a year), got 525601"),
    (
        GOOD + 'cron = "61 * * * *"\n',
        "jobs.snapshot.cron: bad cron expression '61 * * * *': minute 61 is out of range (0-59)",
    ),
    (
        GOOD + 'cron = "30 7 * *"\n',
        "jobs.snapshot.cron: bad cron expression '30 7 * *': a cron expression has 5 fields (minute hour "
        "day-of-month month day-of-week), this one has 4",
    ),
    (
        GOOD + 'cron = "0 3 * * *"\ninterval = 5\n',
        "jobs.snapshot: interval and cron both given: a job has one schedule at most",
    ),
    (
        GOOD + 'cron = "0 3 * * *"\ntimezone = "Europe/Berlni"\n',
        "jobs.snapshot.timezone: no time zone 'Europe/Berlni' (a tz database name like Europe/Berlin or UTC)",
    ),
    (
        GOOD + 'cron = "0 3 * * *"\ntimezone = "../../etc/passwd"\n',
        "jobs.snapshot.timezone: no time zone '../../etc/passwd' (a tz database name like Europe/Berlin or UTC)",
    ),
    (GOOD + 'timezone = "Europe/Berlin"\n', "jobs.snapshot.timezone: only a cron schedule has a time zone"),
    (GOOD + "cooldown = -1\n", "jobs.snapshot.cooldown: must be zero or more minutes, got -1"),
    (GOOD + "timeout = 1e9\n", "jobs.snapshot.timeout: must be at most 525600 minutes (a year), got 1000000000.0"),
    (GOOD + "kill-grace = 4000\n", "jobs.snapshot.kill-grace: must be at most 3600 seconds, got 4000"),
    (
        GOOD + 'env = { SNAPSHOT_RUN_ID = "x" }\n',
        "jobs.snapshot.env.SNAPSHOT_RUN_ID: is set by the service for each run",
    ),
    (GOOD + "env = { PORT = 8080 }\n", "jobs.snapshot.env.PORT: must be a string, got 8080"),
    (GOOD + 'env = { "A=B" = "1" }\n', 'jobs.snapshot.env."A=B": is no variable name'),
    (GOOD + 'env = "A=1"\n', "jobs.snapshot.env: must be a table, got 'A=1'"),
    (GOOD + 'cwd = ""\n', "jobs.snapshot.cwd: is empty"),
    (GOOD + 'paused = "yes"\n', "jobs.snapshot.paused: must be true or false, got 'yes'"),
    (GOOD + 'after = ["snapshto"]\n', "jobs.snapshot.after: 'snapshto' names no job"),
    (GOOD + 'after = "report"\n', "jobs.snapshot.after: must be a list of job names, got 'report'"),
    (GOOD + 'after = ["snapshot"]\n', "jobs.snapshot.after: a cycle: snapshot -> snapshot (each runs after the next)"),
    (
        '[jobs.a]\ncommand = "x"\nafter = ["b"]\n[jobs.b]\ncommand = "x"\nafter = ["c"]\n'
        '[jobs.c]\ncommand = "x"\nafter = ["a"]\n',
        "jobs.a.after: a cycle: a -> b -> c -> a (each runs after the next)",
    ),
    (
        GOOD + 'notify-url = ["https://ok.example/h", "ftp://files.example"]\n',
        "jobs.snapshot.notify-url[1]: must be an http:// or https:// URL with a host, got 'ftp://…'",
    ),
    (
        GOOD + 'notify-url = ["https://user:secret@"]\n',
        "jobs.snapshot.notify-url[0]: must be an http:// or https:// URL with a host, got 'https://…'",
    ),
    (
        GOOD + 'notify-on = ["failures"]\n',
        "jobs.snapshot.notify-on: takes a list of start, success, failure, long, got ['failures']",
    ),
    ("[jobs.snapshot]\ninterval = 30\n", "jobs.snapshot.command: missing: every job needs a command"),
    ('[jobs.snapshot]\ncommand = ""\n', "jobs.snapshot.command: is empty"),
    ("[jobs.snapshot]\ncommand = []\n", "jobs.snapshot.command: is empty"),
    (
        '[jobs.snapshot]\ncommand = "python3 \'unbalanced"\n',
        "jobs.snapshot.command: cannot be split into words: No closing quotation",
    ),
    ('[jobs.snapshot]\ncommand = ["python3", 3]\n', "jobs.snapshot.command[1]: must be a string, got 3"),
    (
        '[jobs.snapshot]\ncommand = "a\\u0000b"\n',
        "jobs.snapshot.command: holds a NUL character, which no program can be given",
    ),
    (
        '[jobs.Report]\ncommand = "x"\n',
        "jobs.Report: a job's name is 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit",
    ),
    (
        '[jobs."a b"]\ncommand = "x"\n',
        'jobs."a b": a job\'s name is 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit',
    ),
    (
        f'[jobs.{"a" * 64}]\ncommand = "x"\n',
        f"jobs.{'a' * 64}: a job's name is 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit",
    ),
    ('default-job = "snap"\n' + GOOD, "default-job: 'snap' names no job (the jobs: snapshot)"),
    ("max-parallel = 0\n" + GOOD, "max-parallel: must be a whole number, 1 or more, got 0"),
    ("max-parallel = 1.5\n" + GOOD, "max-parallel: must be a whole number, 1 or more, got 1.5"),
    ("[defaults]\ncooldown = -3\n" + GOOD, "defaults.cooldown: must be zero or more minutes, got -3"),
    (
        "[defaults]\nbogus = 1\n" + GOOD,
        "defaults.bogus: unknown key (known here: command, interval, cron, timezone, "
        "cooldown, timeout, stall-timeout, kill-grace, cwd, env, paused, after, notify-url, notify-on)",
    ),
    ("defaults = 3\n" + GOOD, "defaults: must be a table, got 3"),
    ("", "jobs: no jobs: name each in a [jobs.NAME] table"),
    ("jobs = [1]\n", "jobs: no jobs: name each in a [jobs.NAME] table"),
    ("[jobs]\nsnapshot = 3\n", "jobs.snapshot: must be a table, got 3"),
    (GOOD + "interval = \n", "line 3, column 12: not TOML: invalid value"),
    (GOOD + 'command = "twice"\n', "line 3, column 18: not TOML: cannot overwrite a value"),
    ("[jobs.snapshot\n", "line 1, column 15: not TOML: expected ']' at the end of a table declaration"),
]


@pytest.mark.parametrize(("text", "line"), BAD)
def test_a_bad_file_is_one_line_naming_the_file_and_the_key(text: str, line: str) -> None:
    with pytest.raises(JobsFileError) as caught:
        parse_jobs(text, FILE)
    assert str(caught.value) == f"jobs.toml: {line}"


def test_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    missing, binary, huge = tmp_path / "missing.toml", tmp_path / "binary.toml", tmp_path / "huge.toml"
    binary.write_bytes(b"# caf\xe9\n")
    huge.write_text("#" * (1 << 20) + "\n")
    for path, line in [
        (missing, "cannot be read: No such file or directory"),
        (binary, "is not UTF-8 text (byte 5)"),
        (huge, "is over 1 MiB; that is no jobs file"),
        (tmp_path, "cannot be read: Is a directory"),
    ]:
        with pytest.raises(JobsFileError) as caught:
            load_jobs_file(path)
        assert str(caught.value) == f"{path}: {line}"


def test_a_good_file_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text(EXAMPLE)
    jobs = load_jobs_file(path)
    assert jobs.path == path and [job.name for job in jobs.jobs] == ["snapshot", "report"]
    assert jobs.job("report").after == ("snapshot",)
    with pytest.raises(KeyError):
        jobs.job("nightly")


def test_a_long_chain_and_its_cycle_are_found_without_recursion() -> None:
    names = [f"j{n}" for n in range(5000)]
    chain = "".join(f'[jobs.{n}]\ncommand = "x"\nafter = ["{names[i + 1]}"]\n' for i, n in enumerate(names[:-1]))
    last = f'[jobs.{names[-1]}]\ncommand = "x"\n'
    assert len(parse_jobs(chain + last, FILE).jobs) == 5000
    with pytest.raises(JobsFileError, match=r"^jobs.toml: jobs.j0.after: a cycle: j0 -> j1 -> .* -> j4999 -> j0 "):
        parse_jobs(chain + last + 'after = ["j0"]\n', FILE)
