"""Email through SMTP when a run fails (``error``: the job failed, timed out, stalled, or the service died during
it) or runs much longer than usual. A run *cancelled* by a person or by a service stop sends none: whoever
cancelled it knows. One :class:`~orchestrator.ops.delivery.Outbox` holds the mails; each try is one SMTP session
in a worker thread (``smtplib`` blocks), with a timeout, retried with backoff on errors that may pass."""

from __future__ import annotations

import asyncio
import email.policy
import logging
import smtplib
import socket
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from enum import StrEnum

from orchestrator.core.checks import Check, CheckKind, human
from orchestrator.core.clock import Clock
from orchestrator.core.events import iso
from orchestrator.core.printable import printable
from orchestrator.core.records import DEFAULT_JOB, RunRecord
from orchestrator.ops.delivery import Backoff, DeliveryError, Outbox

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
"""Per SMTP operation (connect, each command): a server that takes longer is treated as down."""
MAX_SUBJECT_REASON = 120


class Security(StrEnum):
    NONE = "none"
    """Plain SMTP (a relay on localhost or a trusted network)."""
    STARTTLS = "starttls"
    """Plain connect, then ``STARTTLS`` before anything else is said (submission, port 587)."""
    SSL = "ssl"
    """TLS from the first byte (SMTPS, port 465)."""

    @property
    def default_port(self) -> int:
        return {Security.NONE: 25, Security.STARTTLS: 587, Security.SSL: 465}[self]


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    recipients: tuple[str, ...]
    security: Security = Security.STARTTLS
    port: int | None = None
    """``None``: the default of ``security``."""
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str | None = None
    """``None``: ``snapshot-orchestrator@<this host's name>``."""
    timeout: float = TIMEOUT_SECONDS

    @property
    def effective_port(self) -> int:
        return self.port or self.security.default_port

    @property
    def effective_sender(self) -> str:
        return self.sender or f"snapshot-orchestrator@{socket.gethostname()}"


@dataclass(frozen=True, slots=True)
class Mail:
    run_id: str
    subject: str
    body: str

    def describe(self) -> str:
        return f"mail {self.subject!r}"


def one_line(text: str, limit: int = MAX_SUBJECT_REASON) -> str:
    """Fit for a header: the first line, control characters out (a newline would end the header), cut."""
    first = (text.splitlines() or [""])[0]
    clean = " ".join("".join(ch if ch.isprintable() else " " for ch in first).split())
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def message(smtp: SmtpSettings, mail: Mail) -> EmailMessage:
    # Lines up to the hard limit of 998: at the default 78, a subject that starts with a long run id is
    # folded onto the line after "Subject:", which some clients then show with a leading blank.
    msg = EmailMessage(policy=email.policy.default.clone(max_line_length=998))
    msg["Subject"] = mail.subject
    msg["From"] = smtp.effective_sender
    msg["To"] = ", ".join(smtp.recipients)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=smtp.effective_sender.rpartition("@")[2] or None)
    msg.set_content(mail.body)
    return msg


def send_now(smtp: SmtpSettings, mail: Mail) -> None:
    """One SMTP session that sends ``mail`` (blocking: run it in a thread). Raises :class:`DeliveryError`."""
    context = ssl.create_default_context()
    client: smtplib.SMTP
    try:
        if smtp.security is Security.SSL:
            client = smtplib.SMTP_SSL(smtp.host, smtp.effective_port, timeout=smtp.timeout, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.effective_port, timeout=smtp.timeout)
        with client:
            if smtp.security is Security.STARTTLS:
                client.starttls(context=context)
            if smtp.user:
                client.login(smtp.user, smtp.password or "")
            refused = client.send_message(
                message(smtp, mail), from_addr=smtp.effective_sender, to_addrs=smtp.recipients
            )
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(f"the server does not support it: {exc}", retry=False) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"every recipient refused: {_codes(exc.recipients)}", retry=False) from None
    except smtplib.SMTPResponseException as exc:
        # 4xx: "try again later" (greylisting, a full queue); 5xx: it will say the same next time.
        what = "login refused" if isinstance(exc, smtplib.SMTPAuthenticationError) else "the server answered"
        raise DeliveryError(f"{what} {exc.smtp_code} {_text(exc.smtp_error)}", retry=exc.smtp_code < 500) from None
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryError(f"TLS certificate not trusted: {exc.verify_message}", retry=False) from None
    except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, TLS failed, disconnected
        raise DeliveryError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, retry=True) from None
    if refused:
        log.warning("mail %r: some recipients refused it: %s", mail.subject, _codes(refused))


def _codes(refused: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(f"{address} ({code} {_text(text)})" for address, (code, text) in refused.items())


def _text(raw: bytes | str) -> str:
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())


class Mailer:
    """One job's mails go out one at a time, in order, through one outbox; returns at once on :meth:`send`."""

    def __init__(self, smtp: SmtpSettings, *, clock: Clock, backoff: Backoff, job: str = DEFAULT_JOB) -> None:
        self.smtp = smtp
        whose = "" if job == DEFAULT_JOB else f"job {job}: "
        self.outbox = Outbox(
            f"{whose}mail via {smtp.host}:{smtp.effective_port}",
            self._send,
            Mail.describe,
            clock=clock,
            backoff=backoff,
        )

    def start(self) -> None:
        self.outbox.start()

    def send(self, mail: Mail) -> None:
        self.outbox.put(mail)

    async def stop(self, grace: float) -> None:
        await self.outbox.stop(grace)

    async def _send(self, mail: Mail) -> None:
        # In a daemon thread of its own, not the loop's default executor: the service waits for that
        # executor's threads when it exits, so a server that accepts and then says nothing would hold the
        # stop for the whole SMTP timeout. A cancel (at stop) leaves this thread behind, to end with the process.
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def send() -> None:
            try:
                send_now(self.smtp, mail)
            except BaseException as exc:  # handed to the waiting task, which decides what it means
                loop.call_soon_threadsafe(_settle, done, exc)
            else:
                loop.call_soon_threadsafe(_settle, done, None)

        threading.Thread(target=send, name="smtp-send", daemon=True).start()
        await done


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():  # cancelled at stop: nobody waits for the outcome
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def compose(
    event: str,
    run: RunRecord,
    checks: Sequence[Check],
    service_url: str,
    *,
    job: str = DEFAULT_JOB,
    api_url: str | None = None,
) -> Mail:
    """The mail for ``event`` (``failure`` or ``long``) of a run of ``job``: what happened, when, why, and where
    to look (``api_url``: where the job's runs are served, default ``/api/snapshot`` of ``service_url``). The
    subject starts with the job's name in brackets (``[report] run ... failed: ...``; the job ``snapshot``'s
    mails read as they always did)."""
    tag, name = one_line(job, 63), printable(job)
    if event == "long":
        long = next((c for c in checks if c.kind is CheckKind.LONG), None)
        subject = f"[{tag}] run {run.run_id} is running long: {one_line(long.message if long else '')}"
        headline = f"{_whose(name)} run {run.run_id} is still running, longer than usual."
    else:
        reason = one_line(run.error or run.status.value)
        subject = f"[{tag}] run {run.run_id} failed: {reason}"
        headline = f"{_whose(name)} run {run.run_id} ended {run.status.value}: {reason}"
    # The error, step and reasons come from the job and from outsiders: no escape sequence reaches a reader
    # who looks at the mail in a terminal (headers are cleaned by one_line).
    triggers = ", ".join(
        f"{t.source.value} at {iso(t.at)}" + (f" ({printable(t.reason)})" if t.reason else "") for t in run.triggers
    )
    if run.trigger_count > len(run.triggers):
        triggers += f" and {run.trigger_count - len(run.triggers)} more"
    lines = [
        headline,
        "",
        f"Job:       {name}",
        f"Outcome:   {run.status.value}",
        "Error:     " + printable(run.error or "-", keep_newlines=True).replace("\n", "\n" + " " * 11),
        f"Last step: {printable(run.step or '-')}",
        f"Started:   {iso(run.started_at)}",
        f"Finished:  {iso(run.finished_at) or '-'}",
        f"Duration:  {human(run.duration_seconds) if run.duration_seconds is not None else '-'}",
        f"Exit code: {run.exit_code if run.exit_code is not None else '-'}",
        f"Triggers:  {triggers or '-'} ({run.trigger_count} in all)",
    ]
    if checks:
        lines += ["", "Checks:", *(f"  - {printable(check.message)}" for check in checks)]
    runs = f"{api_url or service_url + '/api/snapshot'}/runs/{run.run_id}"
    lines += ["", f"Log:       {runs}/log", f"Run:       {runs}", f"Page:      {service_url}/"]
    return Mail(run.run_id, subject, "\n".join(lines) + "\n")


def _whose(job: str) -> str:
    """How the headline names the job: as it always did for the job ``snapshot``, else by its name."""
    return "Snapshot" if job == DEFAULT_JOB else f"Job {job}:"
