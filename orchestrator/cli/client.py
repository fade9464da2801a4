"""The client commands: ``trigger`` (a file in the triggers folder, or over HTTP and followed with ``--wait``),
``cancel``, ``pause``, ``resume`` and ``reload``, and what they share: the server's address, the token, one line
for a refusal. Each but ``reload`` acts on the job of ``--job`` (orchestrator/cli/jobs.py), else the default."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import urlsplit

from orchestrator.cli.httpclient import Redirected, open_url
from orchestrator.cli.jobs import api_of, job_of, trigger_folder
from orchestrator.cli.options import DEFAULT_URL, option
from orchestrator.config import ConfigError
from orchestrator.core.events import parse_iso, utcnow
from orchestrator.core.printable import printable
from orchestrator.sources.trigger_files import write_trigger_file


def cmd_trigger(args: argparse.Namespace) -> int:
    if args.wait:
        return trigger_and_wait(args)
    folder = trigger_folder(args)
    try:
        path = write_trigger_file(folder.path, args.reason, utcnow())
    except OSError as exc:
        raise ConfigError(f"cannot write a trigger into {folder.path}: {exc.strerror or exc}") from None
    if folder.note is not None:
        print(f"snapshot-orchestrator: note: {printable(folder.note)}", file=sys.stderr)
    job = job_of(args)
    what = "Snapshot requested" if job is None else f"A run of job {job} requested"
    print(printable(f"{what} ({path}); it runs as soon as the service takes the file."))
    return 0


def trigger_and_wait(args: argparse.Namespace) -> int:
    """``trigger --wait``: an HTTP trigger (so the service names its time), then the run followed to its end."""
    from orchestrator.cli.follow import Display, Exit, Follower, Lost, outcome_exit, summary

    url = server_url(args)
    headers = auth_headers(args)
    job = job_of(args)
    # One key per invocation: if the request is retried on its way (a proxy), still one run.
    answer = post_reason(url, "trigger", args.reason, {"Idempotency-Key": str(uuid.uuid4()), **headers}, job=job)
    requested_at = parse_iso(answer.get("requestedAt"))
    if requested_at is None:
        raise ConfigError(f"{url} did not say when the trigger was taken (an older service?); cannot follow the run")
    display = Display(sys.stderr)
    display.waiting(str(answer.get("message") or "Snapshot triggered"))
    follower = Follower(url, headers, display=display, api=api_of(job))
    try:
        record = follower.follow(requested_at, queued=answer.get("queued") is True)
    except urllib.error.HTTPError as exc:
        raise refused_by(url, exc, job=job) from None
    except Lost as exc:
        display.close()
        print(f"snapshot-orchestrator: stopped waiting: {printable(str(exc))}", file=sys.stderr)
        return Exit.TROUBLE
    except KeyboardInterrupt:
        display.close()
        print("snapshot-orchestrator: stopped waiting; the run goes on", file=sys.stderr)
        return Exit.INTERRUPTED
    finally:
        display.close()
    print(summary(record))
    return int(outcome_exit(record))


def cmd_cancel(args: argparse.Namespace) -> int:
    url = server_url(args)
    try:
        answer = post_reason(url, "cancel", args.reason, auth_headers(args), expected=(409,), job=job_of(args))
    except Refused as refused:
        print(f"Nothing to cancel: {refused.message}")
        return 1
    print(printable(str(answer.get("message", "Cancelling"))))
    return 0


def cmd_pause_resume(args: argparse.Namespace) -> int:
    """``pause [--reason R]`` / ``resume``: 0 when the schedule is now as asked (also if it already was)."""
    reason = getattr(args, "reason", "")
    answer = post_reason(server_url(args), args.command_name, reason, auth_headers(args), job=job_of(args))
    print(printable(str(answer.get("message", args.command_name.capitalize() + "d"))))
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """``reload``: the service reads its jobs file again (``POST /api/reload``). 0 with what changed; 2 with the
    service's one line when it refused (the file cannot be used, or there is none: the running jobs stay)."""
    url = server_url(args)
    try:
        answer = post_json(url, "/api/reload", b"", auth_headers(args), expected=(400, 409))
    except Refused as refused:
        raise ConfigError(f"reload refused: {refused.message}") from None
    print(printable(f"Jobs file read again: {answer.get('summary') or answer.get('message') or 'done'}"))
    return 0


class Refused(Exception):
    """The service answered with one of the statuses the caller said it expects (``post_reason``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def post_reason(
    url: str,
    action: str,
    reason: str,
    headers: dict[str, str],
    *,
    expected: tuple[int, ...] = (),
    job: str | None = None,
) -> dict[str, Any]:
    """``POST /api/snapshot/<action>`` (``/api/jobs/<job>/<action>`` for a ``job``) with an optional
    ``{"reason": ...}``; the JSON answer. An ``expected`` refusal is :class:`Refused`; any other refusal, or no
    answer, is a :class:`ConfigError` (exit 2)."""
    body = json.dumps({"reason": reason}).encode() if reason else b""
    return post_json(url, f"{api_of(job)}/{action}", body, headers, expected=expected, job=job)


def post_json(
    url: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    *,
    expected: tuple[int, ...] = (),
    job: str | None = None,
) -> dict[str, Any]:
    """``POST path`` with ``body``; the JSON answer, or :class:`Refused` / :class:`ConfigError` as
    :func:`post_reason` says."""
    request = urllib.request.Request(
        f"{url}{path}", data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with open_url(request, timeout=10) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code in expected:
            raise Refused(exc.code, error_message(exc)) from None
        raise refused_by(url, exc, job=job) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
    return answer if isinstance(answer, dict) else {}


def server_url(args: argparse.Namespace) -> str:
    """``--url`` (``SNAPSHOT_URL``) as ``http(s)://host[:port]`` (a path prefix, as behind a proxy, is kept).
    Anything else is a :class:`ConfigError`: urllib would take ``127.0.0.1:8001`` for a scheme of its own, and
    ``status`` would then report a running service as down."""
    raw = str(option("--url").value(args))
    url = raw.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port out of range or not a number, a bad IPv6 host
        parts, port = None, None
    if (
        parts is None
        or parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or "@" in parts.netloc  # urllib does not send credentials from the URL; they would be taken for a host
        or port == 0
        or parts.query
        or parts.fragment
        or any(ch.isspace() or not ch.isprintable() for ch in url)
    ):
        shown = url.split("://", 1)[0] + "://…" if "@" in url else url  # never echo a password
        raise ConfigError(
            f"--url (SNAPSHOT_URL) must be an http:// or https:// address like {DEFAULT_URL}, got {shown!r}"
        )
    return url


def auth_headers(args: argparse.Namespace) -> dict[str, str]:
    token = option("--token").raw(args)
    return {"Authorization": f"Bearer {token}"} if token else {}


def refused_by(url: str, error: urllib.error.HTTPError, *, job: str | None = None) -> ConfigError:
    """The one line for an error answer: a redirect says what it is (it was not followed), any other answer
    its status and message; a 404 for a ``--job`` names the job (the service has none of that name)."""
    if isinstance(error, Redirected):
        return ConfigError(str(error))
    if job is not None and error.code == 404:
        return ConfigError(f"{url} answered 404 for --job {job}: {error_message(error)}")
    return ConfigError(f"{url} answered {error.code}: {error_message(error)}")


def error_message(error: urllib.error.HTTPError) -> str:
    """The ``message`` of a JSON error answer, else the HTTP reason; printable."""
    try:
        document = json.loads(error.read(65536))
    except (OSError, ValueError):
        return printable(str(error.reason))
    message = document.get("message") if isinstance(document, dict) else None
    text = printable(str(message or error.reason))
    if error.code == 401:  # the service speaks of its header; the person at the CLI needs to know their flag
        text += " (give the service's token with --token, or set SNAPSHOT_TOKEN)"
    return text
