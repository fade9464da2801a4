"""Mail on failure, for real: an aiosmtpd server started by the test, a real service process running real
jobs. Bad SMTP settings end the start with exit status 2 and one clear line."""

from __future__ import annotations

import asyncio
import email
import email.policy
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from orchestrator.cli.main import main
from orchestrator.core.checks import Check, CheckKind
from orchestrator.core.events import RunStatus, Source, Trigger
from orchestrator.core.records import RunRecord
from orchestrator.ops.mail import SmtpSettings, compose, message
from tests.support import PYTHON, ServiceProcess, free_port, job_command, next_status, sse_stream

USER, PASSWORD = "snapshot", "smtp-pass-0123"
JOB = job_command(
    "import os, sys, time\n"
    "reason = os.environ.get('SNAPSHOT_REASON', '')\n"
    "print('PROGRESS 40 Copying files', flush=True)\n"
    "if 'slow' in reason: time.sleep(60)\n"
    "if 'fail' in reason: print('disk full', file=sys.stderr); sys.exit(4)\n"
)


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    login: bytes | None


class Mailbox:
    """The SMTP server's handler: keeps each mail and lets the test wait for the n-th."""

    def __init__(self) -> None:
        self.mails: list[Received] = []
        self._arrived = threading.Condition()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        with self._arrived:
            self.mails.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), parsed, login))
            self._arrived.notify_all()
        return "250 OK"

    def wait(self, count: int, timeout: float = 20) -> list[Received]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.mails) >= count, timeout):
                raise AssertionError(f"{len(self.mails)} mails arrived, waited for {count}")
            return list(self.mails)


def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, auth_data=data)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    yield mailbox, port
    controller.stop()


def smtp_flags(port: int) -> tuple[str, ...]:
    return (
        *("--smtp-host", "127.0.0.1", "--smtp-port", str(port), "--smtp-security", "none"),
        *("--smtp-to", "ops@example.com", "--smtp-to", "oncall@example.com", "--smtp-from", "snap@example.com"),
    )


def last_run(service: ServiceProcess, reason: str) -> dict[str, Any]:
    """Follow the event stream (bounded) until the last run is the one with ``reason``."""

    async def follow() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            events = sse_stream(session, f"{service.url}/api/snapshot/events")
            document = await next_status(events, lambda d: (d.get("lastRun") or {}).get("reason") == reason)
            return dict(document["lastRun"])

    return asyncio.run(follow())


def trigger(service: ServiceProcess, reason: str) -> str:
    status, answer = service.post_json("/api/snapshot/trigger", {"reason": reason})
    assert status == 202, answer
    return str(answer.get("message", ""))


# The test server takes a login without TLS (the service's plain-SMTP path); aiosmtpd warns about exactly that.
@pytest.mark.process
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_a_failed_run_is_mailed_and_a_cancelled_or_completed_one_is_not(
    service_factory: Callable[..., ServiceProcess], smtp_server: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp_server
    service = service_factory(
        *("--interval", "60", "--command", JOB, *smtp_flags(port)),
        env={"SNAPSHOT_SMTP_USER": USER, "SNAPSHOT_SMTP_PASSWORD": PASSWORD},
    )
    service.wait_for_log("completed in")  # the first (startup) run: no mail
    trigger(service, "please fail")
    [mail] = mailbox.wait(1)
    run = service.get_json("/api/snapshot/status")["lastRun"]
    assert run["status"] == "error"
    assert mail.sender == "snap@example.com"
    assert mail.recipients == ["ops@example.com", "oncall@example.com"]
    assert mail.login == USER.encode()
    subject = str(mail.message["Subject"])
    assert subject.startswith(f"[snapshot] run {run['runId']} failed: exited with code 4: disk full")
    body = mail.message.get_content()
    assert "Outcome:   error" in body
    assert "Last step: Copying files" in body
    assert "disk full" in body  # the error carries the job's last stderr lines
    assert "Triggers:  http at " in body
    assert "(please fail) (1 in all)" in body
    assert f"{service.url}/api/snapshot/runs/{run['runId']}/log" in body
    # A run cancelled by a person sends no mail; mails go out in order, so the next failure's is the next one.
    trigger(service, "slow")
    service.wait_for_log("Copying files")
    assert service.post_json("/api/snapshot/cancel", {"reason": "not now"})[0] == 202
    service.wait_for_log("ended cancelled")
    trigger(service, "fail again")
    mails = mailbox.wait(2)
    assert len(mails) == 2
    assert "failed: exited with code 4" in str(mails[1].message["Subject"])
    assert PASSWORD not in service.logs()


@pytest.mark.process
def test_an_unreachable_smtp_server_costs_one_line_and_nothing_else(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    service = service_factory(
        *("--interval", "60", "--command", JOB, *smtp_flags(free_port()), "--notify-backoff", "0.05"),
    )
    service.wait_for_log("completed in")
    trigger(service, "fail")
    service.wait_for_log("not delivered after 5 tries")
    log = service.logs()
    assert log.count("not delivered") == 1
    assert "ConnectionRefusedError" in log
    run = service.get_json("/api/snapshot/status")["lastRun"]
    assert run["status"] == "error"  # recorded like any run
    assert service.get_json(f"/api/snapshot/runs/{run['runId']}")["status"] == "error"
    trigger(service, "fine")  # and the next run runs
    assert last_run(service, "fine")["status"] == "completed"
    assert service.stop() == 0


@pytest.mark.process
def test_a_silent_smtp_server_does_not_hold_up_the_stop(service_factory: Callable[..., ServiceProcess]) -> None:
    """A server that accepts and never greets: the mail's thread waits out its 10 s timeout, but the service
    stops after the deliveries' 3 s grace, without waiting for the thread's 10 s."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        service = service_factory(*("--interval", "60", "--command", JOB, *smtp_flags(silent.getsockname()[1])))
        service.wait_for_log("completed in")
        trigger(service, "fail")
        service.wait_for_log("ended error")
        connection, _ = silent.accept()  # the mail is on its way, and will hear nothing
        with connection:
            service.proc.send_signal(signal.SIGTERM)
            service.wait_for_log("not delivered")
            # Bounded well below the SMTP timeout (10 s): the exit must not wait for the mail's thread.
            assert service.proc.wait(timeout=5) == 0, service.logs()


def folders(root: Path) -> list[str]:
    return ["--data-dir", str(root / "data"), "--triggers-dir", str(root / "triggers")]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--smtp-host", "mail.example.com"], {}, "--smtp-host needs at least one --smtp-to"),
        (["--smtp-to", "ops@example.com"], {}, "--smtp-to needs an --smtp-host"),
        (["--smtp-host", "m", "--smtp-to", "not-an-address"], {}, "--smtp-to must be an email address"),
        (["--smtp-host", "m", "--smtp-to", "a@b.c", "--smtp-security", "tls"], {}, "--smtp-security must be none"),
        (["--smtp-host", "m", "--smtp-to", "a@b.c", "--smtp-port", "0"], {}, "error: --smtp-port must be between 1"),
        (["--smtp-host", "m", "--smtp-to", "a@b.c", "--smtp-user", "u"], {}, "--smtp-user needs a password"),
        (["--smtp-host", "m"], {"SNAPSHOT_SMTP_TO": "a@b.c,bad"}, "--smtp-to must be an email address"),
        (["--notify-url", "ftp://files.example.com/x"], {}, "--notify-url must be an http:// or https:// URL"),
        (["--notify-url", "hooks.example.com"], {}, "--notify-url must be an http:// or https:// URL"),
        ([], {"SNAPSHOT_NOTIFY_URLS": "https://ok.example.com/h,nope"}, "--notify-url must be an http"),
        (["--notify-on", "start,finish"], {}, "--notify-on takes a comma list of start, success, failure, long"),
        (["--long-factor", "0.5"], {}, "--long-factor must be 0 (off) or more than 1"),
        (["--fast-factor", "2"], {}, "--fast-factor must be 0 (off) or between 0 and 1"),
        (["--late-grace", "-1"], {}, "--late-grace must be zero or more minutes"),
        (["--public-url", "example.com"], {}, "--public-url must be an http:// or https:// URL"),
        # Would only fail at delivery: a login smtplib cannot encode (it killed the mail sender), a URL yarl refuses.
        (
            ["--smtp-host", "m", "--smtp-to", "a@b.c", "--smtp-user", "u"],
            {"SNAPSHOT_SMTP_PASSWORD": "pässwörd"},
            "ASCII",
        ),
        (["--notify-url", "http://[hooks/x"], {}, "--notify-url http://…: Invalid IPv6 URL"),
        (["--notify-url", "http://hooks:99999/x"], {}, "--notify-url http://…: Port out of range"),
        # No host (README: "a URL with a host"): every delivery failed. The password is not echoed.
        (["--notify-url", "http://user:SECRETPW@"], {}, "--notify-url must be an http:// or https:// URL with a host"),
        (["--notify-url", "https://:8443/hook"], {}, "--notify-url must be an http:// or https:// URL with a host"),
        (["--public-url", "http://user:SECRETPW@"], {}, "--public-url must be an http:// or https:// URL"),
    ],
)
def test_bad_notification_settings_exit_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        code = main(["serve", "--port", str(free_port()), *folders(tmp_path), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("snapshot-orchestrator: error: "), err
    assert message in err
    assert "\n" not in err.rstrip("\n")  # one line
    assert "SECRETPW" not in err
    assert not (tmp_path / "data" / "runs.sqlite3").exists()  # nothing started


@pytest.mark.process
def test_a_password_flag_is_warned_about_and_a_bad_setting_stops_the_real_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [PYTHON, "-m", "orchestrator", "serve", "--smtp-host", "m", "--smtp-password", "pw", "--smtp-to", "a@b.c"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "warning: --smtp-password shows in ps" in result.stderr
    assert "error: an SMTP password needs --smtp-user" in result.stderr


def test_the_long_mail_says_what_is_running_long_and_headers_stay_one_line() -> None:
    start = datetime(2026, 1, 20, 10, 0, tzinfo=UTC)
    run = RunRecord("20260120T100000Z-3fa9c1", (Trigger(Source.TIMER, start, "nightly\nexport"),), start)
    long = Check(CheckKind.LONG, run.run_id, "run 20260120T100000Z-3fa9c1 has been running for 41 min, more", start)
    mail = compose("long", run, [long], "https://snap.example.com")
    assert mail.subject == f"[snapshot] run {run.run_id} is running long: {long.message}"
    assert "Finished:  -" in mail.body and f"  - {long.message}" in mail.body
    error = replace(run, status=RunStatus.ERROR, finished_at=start, error="line one\r\nSubject: injected")
    failed = message(SmtpSettings("m", ("a@b.c",)), compose("failure", error, [], "http://h:1"))
    assert failed["Subject"] == f"[snapshot] run {run.run_id} failed: line one"
    assert "Error:     line one\n           Subject: injected" in failed.get_content()


def test_the_mail_body_shows_escape_sequences_from_the_job_instead_of_sending_them() -> None:
    # The job's stderr and step, and a trigger's reason, reach a mail read in a terminal (mutt, less): ESC, BEL
    # and CR went into the body as they were (set the window title, cleared the screen, rewrote a line).
    start = datetime(2026, 1, 20, 10, 0, tzinfo=UTC)
    run = RunRecord(
        "20260120T100000Z-3fa9c1",
        (Trigger(Source.HTTP, start, "pr \x1b[31m42"),),
        start,
        status=RunStatus.ERROR,
        finished_at=start,
        error="exited with code 1: evil\x1b[2K\rFAKE: all good\r\nsecond\x07line",
        step="\x1b]0;PWNED-TITLE\x07\x1b[2Jred step",
    )
    check = Check(CheckKind.FAST, run.run_id, "fast \x1b[2J run", start)
    body = message(SmtpSettings("m", ("a@b.c",)), compose("failure", run, [check], "http://h:1")).get_content()
    assert not any(ch in body for ch in "\x1b\x07\r"), repr(body)
    assert "Error:     exited with code 1: evil\\x1b[2K\\x0dFAKE: all good\n           second\\x07line\n" in body
    assert "Last step: \\x1b]0;PWNED-TITLE\\x07\\x1b[2Jred step\n" in body
    assert "  - fast \\x1b[2J run" in body
