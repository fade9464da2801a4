"""The command line as users run it: a real ``python -m orchestrator`` process each time."""

from __future__ import annotations

import email.message
import io
import json
import logging
import os
import socket
import subprocess
import urllib.error
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import serve
from orchestrator.cli.announce import protections, unknown_variables
from orchestrator.cli.client import error_message
from orchestrator.cli.options import OPTIONS, settings_from
from orchestrator.cli.parser import build_parser
from orchestrator.cli.status import format_status
from orchestrator.config import MAIL_SECURITIES
from orchestrator.ops.mail import Security
from tests.support import PYTHON, REPO, free_port, sample_command
from tests.tinyhttp import tiny_server


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "orchestrator", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.process
@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--interval", "-5"], {}, "--interval must be more than zero minutes"),
        (["--interval", "0"], {}, "--interval must be more than zero minutes"),
        (["--interval", "soon"], {}, "--interval must be a number of minutes"),
        ([], {"SNAPSHOT_INTERVAL": "-1"}, "--interval must be more than zero minutes"),
        (["--cooldown", "-1"], {}, "--cooldown must be zero or more minutes"),
        (["--port", "99999"], {}, "--port must be between 1 and 65535"),
        (["--command", "no-such-program-xyz --flag"], {}, "'no-such-program-xyz' not found on PATH"),
        (["--command", "/nonexistent/job"], {}, "/nonexistent/job not found"),
        (["--command", "'unbalanced"], {}, "cannot be split"),
        (["--data-dir", "{file}/sub"], {}, "--data-dir"),
        (["--log-level", "chatty"], {}, "--log-level"),
        (["--timeout", "-1"], {}, "--timeout must be zero or more minutes"),
        (["--kill-grace", "soon"], {}, "--kill-grace must be a number of seconds"),
        (["--token", "short"], {}, "--token must be 8 to 512 characters"),
        (["--token-for-reads"], {}, "--token-for-reads needs a --token"),
        (["--allow-origin", "evil.example"], {}, "--allow-origin must be an origin like"),
        ([], {"SNAPSHOT_TRIGGER_LIMIT": "-3"}, "--trigger-limit must be zero or more"),
        (["--interval", "1e300"], {}, "--interval must be at most 525600 minutes"),
        (["--timeout", "1e10"], {}, "--timeout must be at most 525600 minutes"),
        (["--kill-grace", "1e308"], {}, "--kill-grace must be at most 3600 seconds"),
        (["--streams-per-client", "-1"], {}, "--streams-per-client must be zero or more"),
        ([], {"SNAPSHOT_STREAMS_PER_CLIENT": "many"}, "--streams-per-client must be a whole number"),
        (["--connections-per-client", "-1"], {}, "--connections-per-client must be zero or more"),
        (["--max-streams", "0"], {}, "--max-streams must be from 1 to 1000000"),
        ([], {"SNAPSHOT_MAX_STREAMS": "plenty"}, "--max-streams must be a whole number of event streams"),
        (["--max-streams", "999999"], {}, "--max-streams 999999 is more than the"),
        ([], {"SNAPSHOT_CONNECTIONS_PER_CLIENT": "lots"}, "--connections-per-client must be a whole number"),
        (["--trusted-proxy", "proxy.example"], {}, "--trusted-proxy must be an IP address or network"),
        ([], {"SNAPSHOT_TRUSTED_PROXIES": "10.0.0.1, 10.0.0.5/24"}, "'10.0.0.5/24' (10.0.0.5/24 has host bits set)"),
        (["--allowed-host", "https://snap.example"], {}, "--allowed-host must be a host name like"),
        (["--allowed-host", "snap.example:8001"], {}, "--allowed-host must be a host name like"),
        ([], {"SNAPSHOT_ALLOWED_HOSTS": "snap.example, *.example"}, "--allowed-host must be a host name like"),
        (["--frame-ancestor", "intranet.example"], {}, "--frame-ancestor must be an origin like"),
        ([], {"SNAPSHOT_FRAME_ANCESTORS": "https://a.example/path"}, "--frame-ancestor must be an origin like"),
        (["--frame-ancestor", "https://a.example;script-src"], {}, "--frame-ancestor must be an origin like"),
    ],
)
def test_bad_settings_end_with_one_clear_line(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    (tmp_path / "file").write_text("")
    args = [a.replace("{file}", str(tmp_path / "file")) for a in args]
    port = [] if "--port" in args else ["--port", str(free_port())]
    result = run_cli("serve", *port, *args, cwd=tmp_path, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert not (tmp_path / "data" / "orchestrator_state.json").exists(), "nothing ran"


def test_supervision_and_guard_settings_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPSHOT_TOKEN", "s3cret-token")
    monkeypatch.setenv("SNAPSHOT_STALL_TIMEOUT", "5")
    monkeypatch.setenv("SNAPSHOT_ALLOW_ORIGIN", "https://ignored.example")
    origins = ["--allow-origin", "https://A.example", "--allow-origin", "https://b.example:8443/, http://c.example"]
    args = build_parser().parse_args(
        ["serve", "--timeout", "20", "--kill-grace", "2.5", "--token-for-reads", "--trigger-limit", "0", *origins]
    )
    settings = settings_from(args)
    assert (settings.job.timeout_minutes, settings.job.stall_timeout_minutes, settings.job.kill_grace_seconds) == (
        20,
        5,
        2.5,
    )
    assert (settings.http.token, settings.http.token_for_reads, settings.http.trigger_limit) == (
        "s3cret-token",
        True,
        0,
    )
    assert settings.http.allow_origins == ("https://a.example", "https://b.example:8443", "http://c.example")
    assert "s3cret" not in repr(settings), "the token never shows up in a log of the settings"
    defaults = settings_from(build_parser().parse_args(["serve", "--allow-origin", "https://x.example"]))
    assert (defaults.job.timeout, defaults.job.kill_grace_seconds, defaults.http.trigger_limit) == (None, 10.0, 30)


def test_stream_settings_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPSHOT_TRUSTED_PROXIES", "10.0.0.1, fd00::/8")
    monkeypatch.setenv("SNAPSHOT_STREAMS_PER_CLIENT", "5")
    from_env = settings_from(build_parser().parse_args(["serve"]))
    assert [str(n) for n in from_env.http.trusted_proxies] == ["10.0.0.1/32", "fd00::/8"]
    assert from_env.http.streams_per_client == 5
    flags = ["serve", "--trusted-proxy", "127.0.0.1", "--trusted-proxy", "10.0.0.0/8", "--streams-per-client", "0"]
    from_flags = settings_from(build_parser().parse_args(flags))
    assert [str(n) for n in from_flags.http.trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/8"]
    assert from_flags.http.streams_per_client == 0
    monkeypatch.delenv("SNAPSHOT_TRUSTED_PROXIES")
    monkeypatch.delenv("SNAPSHOT_STREAMS_PER_CLIENT")
    assert from_flags.http.sse_max_clients is None  # derived at start, from the limit in force then
    monkeypatch.setenv("SNAPSHOT_MAX_STREAMS", "300")
    assert settings_from(build_parser().parse_args(["serve"])).http.max_streams() == 300
    from_flag = settings_from(build_parser().parse_args(["serve", "--max-streams", "12000"])).http
    assert (from_flag.max_streams(), from_flag.max_log_streams()) == (12000, 3000)
    monkeypatch.delenv("SNAPSHOT_MAX_STREAMS")
    defaults = settings_from(build_parser().parse_args(["serve"]))
    assert (defaults.http.trusted_proxies, defaults.http.streams_per_client) == ((), 20)


def test_connections_per_client_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_from(build_parser().parse_args(["serve"])).http.connections_per_client == 256
    monkeypatch.setenv("SNAPSHOT_CONNECTIONS_PER_CLIENT", "40")
    assert settings_from(build_parser().parse_args(["serve"])).http.connections_per_client == 40
    flags = ["serve", "--connections-per-client", "0"]
    assert settings_from(build_parser().parse_args(flags)).http.connections_per_client == 0


def test_host_and_framing_settings_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPSHOT_ALLOWED_HOSTS", "ignored.example")
    monkeypatch.setenv("SNAPSHOT_FRAME_ANCESTORS", "https://portal.example, http://127.0.0.1:9000")
    args = build_parser().parse_args(
        ["serve", "--allowed-host", "Snap.Example.", "--allowed-host", "10.0.0.5,snapshots.internal"]
    )
    settings = settings_from(args)
    assert settings.http.allowed_hosts == ("snap.example", "10.0.0.5", "snapshots.internal")
    assert settings.http.frame_ancestors == ("https://portal.example", "http://127.0.0.1:9000")
    monkeypatch.delenv("SNAPSHOT_ALLOWED_HOSTS")
    monkeypatch.delenv("SNAPSHOT_FRAME_ANCESTORS")
    defaults = settings_from(build_parser().parse_args(["serve"]))
    assert (defaults.http.allowed_hosts, defaults.http.frame_ancestors) == ((), ())


@pytest.mark.process
def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("--port", str(port), "--command", sample_command(1), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"snapshot-orchestrator: error: port {port} on 127.0.0.1 is already in use"


@pytest.mark.process
def test_env_settings_and_flags_win(service_factory: Any, tmp_path: Path) -> None:
    env = {"SNAPSHOT_INTERVAL": "7", "SNAPSHOT_COOLDOWN": "2"}
    service = service_factory("--command", sample_command(0.1), env=env, root=tmp_path / "a")
    doc = service.get_json("/api/snapshot/status")
    assert (doc["intervalMinutes"], doc["cooldownMinutes"]) == (7, 2)
    service = service_factory("--command", sample_command(0.1), "--interval", "0.5", env=env, root=tmp_path / "b")
    assert service.get_json("/api/snapshot/status")["intervalMinutes"] == 0.5


@pytest.mark.process
def test_trigger_drops_a_file_that_the_service_takes_later(tmp_path: Path) -> None:
    result = run_cli("trigger", "--reason", "nightly export", "--triggers-dir", "t", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [path] = (p for p in (tmp_path / "t").iterdir() if p.is_file())
    assert json.loads(path.read_text()) == {"reason": "nightly export"}
    assert "Snapshot requested" in result.stdout


@pytest.mark.process
def test_status_from_server_and_from_files_when_down(service_factory: Any, tmp_path: Path) -> None:
    service = service_factory("--command", sample_command(0.1), "--interval", "60")
    url = ["--url", service.url, "--data-dir", str(service.data_dir)]
    live = run_cli("status", "--json", *url, cwd=tmp_path)
    assert live.returncode == 0, live.stderr
    assert json.loads(live.stdout)["intervalMinutes"] == 60
    human = run_cli("status", *url, cwd=tmp_path)
    assert f"server {service.url}" in human.stdout
    service.stop()
    down = run_cli("status", "--json", *url, cwd=tmp_path)
    assert down.returncode == 0
    doc = json.loads(down.stdout)
    assert doc["serverUp"] is False
    assert doc["lastRunAt"] is not None
    readable = run_cli("status", *url, cwd=tmp_path)
    assert "service not running" in readable.stdout
    assert "unreachable" in readable.stdout


@pytest.mark.process
def test_help_lists_the_options(tmp_path: Path) -> None:
    result = run_cli("serve", "--help", cwd=tmp_path)
    flags = ("--host", "--port", "--interval", "--cooldown", "--command", "--data-dir", "--triggers-dir")
    for flag in (*flags, "--max-streams", "--streams-per-client", "--connections-per-client", "--trusted-proxy"):
        assert flag in result.stdout


def test_status_says_when_a_run_is_being_stopped() -> None:
    doc = {"running": True, "stopping": "timed out", "progress": {"progress": 40, "step": "Fetching PRs (6/15)"}}
    assert "State:    stopping (timed out), 40%\nStep:     Fetching PRs (6/15)\n" in format_status(doc, "server x")
    assert "State:    running, 40%\nStep:     Fetching PRs (6/15)\n" in format_status({**doc, "stopping": None}, "x")
    assert "Step:" not in format_status({"running": True, "progress": {"progress": 0, "step": ""}}, "x")


@pytest.mark.parametrize(
    ("progress", "shown"),
    [
        (
            {"step": "Fetching GitHub PRs", "detail": "repo 5/15: octo/api", "done": 5, "total": 15},
            "Fetching GitHub PRs \u2014 repo 5/15: octo/api (5/15)",
        ),
        (
            {"step": "Fetching GitHub PRs", "detail": "repo 5/15: octo/api"},
            "Fetching GitHub PRs \u2014 repo 5/15: octo/api",
        ),
        ({"step": "Fetching GitHub PRs", "done": 5, "total": 15, "detail": None}, "Fetching GitHub PRs (5/15)"),
        ({"step": "Counting", "done": 0}, "Counting (0)"),  # a count without a total
        ({"step": "Fetching PRs (6/15)"}, "Fetching PRs (6/15)"),  # the line form: the step alone
        ({"step": "", "detail": "page 3"}, " \u2014 page 3"),
    ],
)
def test_status_shows_the_step_with_its_detail_and_counts(progress: dict[str, Any], shown: str) -> None:
    doc = {"running": True, "progress": {"progress": 45, **progress}, "eta": {"secondsLeft": 370}}
    lines = format_status(doc, "server x").splitlines()
    assert lines[1:3] == ["State:    running, 45%, about 6:10 left", f"Step:     {shown}"]


def test_status_from_files_counts_every_pending_trigger(tmp_path: Path) -> None:
    """The state file names at most 100 pending triggers and counts the rest (``pendingCount``): a service that
    stopped with a burst of 150 waiting says 150, not 100."""
    from orchestrator.cli.status import offline_status
    from orchestrator.core.events import Source, Trigger
    from orchestrator.core.records import State
    from orchestrator.store.statefile import StateFile
    from tests.fakes import T0

    state = State()
    for n in range(150):
        state = state.with_trigger(Trigger(Source.FILE, T0, f"file {n}"))
    assert len(state.pending) == 100
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    assert StateFile(data_dir / "orchestrator_state.json").job("snapshot").save(state)
    doc = offline_status(data_dir)
    assert doc["pendingTriggers"] == 150
    assert "Queued:   150 trigger(s) waiting" in format_status(doc, "data folder")


@pytest.mark.process
@pytest.mark.parametrize(
    ("args", "env", "shown"),
    [
        # No scheme: urllib took "127.0.0.1" for one, and status said the service was down (and read the folder).
        (["status", "--url", "127.0.0.1:18123", "--data-dir", "data"], {}, "'127.0.0.1:18123'"),
        (["resume", "--url", "ftp://x"], {}, "'ftp://x'"),  # was "cannot reach ftp://x: Name or service not known"
        (["pause", "--url", "http://:8001"], {}, "'http://:8001'"),
        (["cancel", "--url", "http://127.0.0.1:99999"], {}, "'http://127.0.0.1:99999'"),
        (["trigger", "--wait"], {"SNAPSHOT_URL": "http://user:SECRETPW@127.0.0.1:8001"}, "'http://…'"),
    ],
)
def test_a_url_that_is_not_http_host_port_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], shown: str
) -> None:
    result = run_cli(*args, cwd=tmp_path, env=env)
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr == (
        "snapshot-orchestrator: error: --url (SNAPSHOT_URL) must be an http:// or https:// address like "
        f"http://127.0.0.1:8001, got {shown}\n"
    )
    assert not (tmp_path / "triggers").exists() and not (tmp_path / "data").exists()


EVIL = "\x1b]0;PWNED-TITLE\x07\x1b[2J\x1b[31mred step"
CONTROLS = [chr(n) for n in (*range(32), *range(127, 160))]


def test_status_shows_escape_sequences_from_the_service_instead_of_sending_them() -> None:
    # The step, error, reasons and check messages come from the job and from outsiders (PR data): printed as they
    # were, they set the window title, cleared the screen and rewrote lines of the operator's terminal.
    run = {"runId": "r\x1b[1", "startedAt": "2026-01-20T10:00:00.000Z", "status": "error", "trigger": "http"}
    run |= {"reason": "pr\r42", "error": "exited with code 1: evil\x1b[2K\rFAKE: all good\nmore", "finishedAt": "x"}
    progress = {"progress": 30, "step": EVIL, "detail": "repo\x1b[2J 1/2", "done": 1, "total": 2}
    doc = {"running": True, "progress": progress, "paused": {"since": "s", "reason": "\x9b2J"}}
    doc["checks"] = [{"message": "late\x07"}]
    shown = format_status(doc, "server x", [run])
    assert not any(ch in shown.replace("\n", "") for ch in CONTROLS), repr(shown)
    assert "Step:     \\x1b]0;PWNED-TITLE\\x07\\x1b[2J\\x1b[31mred step \u2014 repo\\x1b[2J 1/2 (1/2)\n" in shown
    assert "Paused:   since s: \\x9b2J (" in shown and "Warning:  late\\x07" in shown
    assert shown.endswith("  http (pr\\x0d42) - exited with code 1: evil\\x1b[2K\\x0dFAKE: all good")
    last = format_status({"running": False, "lastRun": run}, "server x")
    assert "Last run: error at 2026-01-20T10:00:00.000Z, trigger http\nError:    exited with code 1: evil\\x1b" in last


def test_status_says_seconds_when_the_next_run_is_under_a_minute_away() -> None:
    doc = {"running": False, "nextRunAt": "T", "minutesUntilNextRun": 1, "secondsUntilNextRun": 3.2}
    assert "State:    idle, next snapshot in 4 s (T)" in format_status(doc, "server x")
    doc |= {"minutesUntilNextRun": 12, "secondsUntilNextRun": 690.0}
    assert "State:    idle, next snapshot in 12 min (T)" in format_status(doc, "server x")
    assert "next snapshot in 1 min" in format_status({**doc, "minutesUntilNextRun": 1, "secondsUntilNextRun": 59.5}, "")


@pytest.mark.process
def test_status_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """``status | head -1``: the reader leaves before the output is all written. No traceback, exit 0."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written: the first write gets EPIPE
    try:
        done = subprocess.run(
            [
                PYTHON,
                "-m",
                "orchestrator",
                "status",
                "--json",
                "--url",
                "http://127.0.0.1:9",
                "--data-dir",
                str(tmp_path),
            ],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr and b"BrokenPipe" not in done.stderr, done.stderr


def test_a_refused_token_tells_how_to_give_one() -> None:
    error = urllib.error.HTTPError(
        "http://127.0.0.1:8001/api/snapshot/status",
        401,
        "Unauthorized",
        email.message.Message(),
        io.BytesIO(b'{"success": false, "message": "This needs the service\'s token"}'),
    )
    assert (
        error_message(error)
        == "This needs the service's token (give the service's token with --token, or set SNAPSHOT_TOKEN)"
    )


def test_a_misspelt_variable_is_named_with_what_it_looks_like() -> None:
    environ = {
        "SNAPSHOT_ALLOWED_HOST": "vm",  # the setting is SNAPSHOT_ALLOWED_HOSTS
        "SNAPSHOT_ALLOW_ORIGINS": "https://a.example",  # SNAPSHOT_ALLOW_ORIGIN
        "SNAPSHOT_WHATEVER": "1",
        "SNAPSHOT_TOKEN": "x",
        "SNAPSHOT_RUN_ID": "20260101T000000Z-0a0a0a",  # set for a job: a service started from one has it
        "SNAPSHOT_JOB": "report",  # likewise; not a misspelt SNAPSHOT_JOBS
        "PATH": "/bin",
    }
    assert unknown_variables(environ) == [
        ("SNAPSHOT_ALLOWED_HOST", "SNAPSHOT_ALLOWED_HOSTS"),
        ("SNAPSHOT_ALLOW_ORIGINS", "SNAPSHOT_ALLOW_ORIGIN"),
        ("SNAPSHOT_WHATEVER", None),
    ]


def test_the_protections_line_says_what_guards_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = settings_from(build_parser().parse_args(["serve"]))
    assert protections(plain) == (
        "token: off; host names answered: loopback names and IP addresses; other origins: none; trusted proxies: none"
    )
    monkeypatch.setenv("SNAPSHOT_TOKEN", "a-long-enough-token")
    guarded = settings_from(
        build_parser().parse_args(
            ["serve", "--host", "0.0.0.0", "--token-for-reads", "--allowed-host", "vm", "--trusted-proxy", "10.0.0.1"]
        )
    )
    assert protections(guarded) == (
        "token: on, reads too; host names answered: vm, loopback names and IP addresses; other origins: none; "
        "trusted proxies: 10.0.0.1/32"
    )


# ------------------------------------------------------------------------------- redirects are not followed
def elsewhere(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """A server that is not the service, but answers like one (so a client that got there would go on)."""
    if path.startswith("/api/snapshot/runs"):
        return 200, {"Content-Type": "application/json"}, b'{"runs": []}'
    return 200, {"Content-Type": "application/json"}, b'{"running": false, "message": "ok"}'


@pytest.mark.process
@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["status"], 302),
        (["cancel"], 307),
        (["pause"], 301),
        (["resume"], 308),
        (["trigger", "--wait"], 303),
        (["runs", "show", "20261207T100000Z-3fa9c1"], 302),
    ],
)
def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(tmp_path: Path, args: list[str], code: int) -> None:
    # Before: urllib followed the redirect with every header, so the other host logged "Authorization: Bearer
    # s3cret" for /status, /runs and /cancel (and got the POSTs as GETs).
    with tiny_server(elsewhere) as target:
        here = f"http://127.0.0.1:{target.port}"

        def redirect(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
            return code, {"Location": here + path}, b""

        with tiny_server(redirect) as redirector:
            url = f"http://localhost:{redirector.port}"
            result = run_cli(*args, "--url", url, cwd=tmp_path, env={"SNAPSHOT_TOKEN": "s3cret-token"})
        assert target.seen == [], "nothing reached the host the redirect named"
    assert [(s.method, s.authorization) for s in redirector.seen] == [
        ("GET" if args[0] in ("status", "runs") else "POST", "Bearer s3cret-token")
    ]
    assert (result.returncode, result.stdout) == (2, ""), result
    path = redirector.seen[0].path
    assert result.stderr == (
        f"snapshot-orchestrator: error: {url}{path} answered {code}, a redirect to {here}{path}, which was not "
        "followed (the token is never sent elsewhere): the service never redirects, so --url (SNAPSHOT_URL) is "
        "wrong or a proxy is in the way\n"
    )
    assert not (tmp_path / "data").exists(), "status did not take the service for down"


# ------------------------------------------------------------------------------------------ the option table
def test_each_option_is_declared_once_fills_a_real_field_and_is_documented() -> None:
    readme = (REPO / "README.md").read_text()
    assert len({option.flag for option in OPTIONS}) == len({option.env for option in OPTIONS}) == len(OPTIONS)
    for option in OPTIONS:
        if option.field is not None:
            option.default_value  # noqa: B018 (raises AttributeError for a field that is not in Settings)
        assert option.flag in readme, option.flag
        assert option.env in readme, option.env


def test_the_mail_security_settings_are_the_mailers() -> None:
    assert set(MAIL_SECURITIES) == {security.value for security in Security}


@pytest.mark.parametrize(
    ("limits", "fails", "said"),
    [
        ((1024, 20000), False, (logging.INFO, "file descriptor limit raised from 1024 to 20000 (the hard limit)")),
        (
            (1024, 20000),
            True,
            (logging.WARNING, "file descriptor limit: cannot raise it from 1024 to 20000 (no), it stays"),
        ),
        (
            (4096, 4096),
            False,
            (logging.INFO, "file descriptor limit 4096: the hard limit already, it cannot be raised"),
        ),
    ],
)
def test_the_descriptor_limit_is_raised_to_the_hard_one_and_said_once(
    monkeypatch: pytest.MonkeyPatch, limits: tuple[int, int], fails: bool, said: tuple[int, str]
) -> None:
    asked: list[tuple[int, int]] = []

    def setrlimit(_which: int, wanted: tuple[int, int]) -> None:
        if fails:
            raise ValueError("no")
        asked.append(wanted)

    monkeypatch.setattr(serve.resource, "getrlimit", lambda _which: limits)
    monkeypatch.setattr(serve.resource, "setrlimit", setrlimit)
    level, line = serve.raise_fd_limit()
    assert level == said[0]
    assert line.startswith("file descriptor limit") and line.endswith(said[1]), line
    assert asked == ([] if fails or limits[0] == limits[1] else [(limits[1], limits[1])])
