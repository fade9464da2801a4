"""Command line: ``serve`` (the default), ``trigger`` and ``status``. Flags win over environment variables,
which win over defaults. Bad settings end with one line on stderr and exit status 2, before anything runs."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import json
import logging
import math
import os
import resource
import signal
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from orchestrator import __version__
from orchestrator.cli.httpclient import Redirected, open_url
from orchestrator.config import (
    DEFAULT_CONNECTIONS_PER_CLIENT,
    DEFAULT_COOLDOWN_MINUTES,
    DEFAULT_HOST,
    DEFAULT_INTERVAL_MINUTES,
    DEFAULT_KILL_GRACE_SECONDS,
    DEFAULT_PORT,
    DEFAULT_STREAMS_PER_CLIENT,
    DEFAULT_TRIGGER_LIMIT,
    ConfigError,
    Settings,
    bind_socket,
    default_max_log_streams,
    default_max_streams,
    is_loopback,
    parse_addresses,
    parse_bool,
    parse_command,
    parse_count,
    parse_factor,
    parse_hosts,
    parse_keep_days,
    parse_keep_runs,
    parse_minutes,
    parse_notify_on,
    parse_notify_urls,
    parse_origins,
    parse_port,
    parse_seconds,
    parse_security,
    parse_token,
    parse_trusted_proxies,
    sample_job_command,
    validate,
)
from orchestrator.core.events import iso, parse_iso, utcnow
from orchestrator.core.printable import first_line, printable
from orchestrator.disk.datadir import OwnFiles, tighten
from orchestrator.http import accesslog as httplog
from orchestrator.http.clientaddr import TrustedProxies
from orchestrator.http.connlimits import (
    ConnectionGate,
    ConnectionLimits,
    derived_total,
    descriptor_limit,
    gated,
    limits_for,
)
from orchestrator.live.progress import PROGRESS_FILE_NAME
from orchestrator.sources.trigger_files import write_trigger_file
from orchestrator.store.history import HISTORY_FILE_NAME, read_recent
from orchestrator.store.lock import LOCK_FILE_NAME, AlreadyLocked, InstanceLock
from orchestrator.store.runlogs import LOG_NAME
from orchestrator.store.statefile import STATE_FILE_NAME

log = logging.getLogger(__name__)

OWN_FILES = OwnFiles(
    names=frozenset({STATE_FILE_NAME, PROGRESS_FILE_NAME, LOCK_FILE_NAME, HISTORY_FILE_NAME}),
    logs=lambda name: LOG_NAME.match(name) is not None,
)
"""The files in the data folder that are the service's own: made owner-only at start."""


class PrintableFormatter(logging.Formatter):
    """Log lines with control characters shown as ``\\xNN``: a job's stderr, a step or a reason quoted in
    a line must not retitle, clear or rewrite the operator's terminal (``ESC ] 0 ; ... BEL``, ``ESC [ 2 J``).
    Line breaks stay (a traceback); every text from outside that could hold one is quoted with ``%r``."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), keep_newlines=True)


DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
KEEPALIVE_SECONDS = 15
RECENT_RUNS = 5
"""Runs listed by ``status``."""
T = TypeVar("T")

ENV_NAMES = {
    "host": "SNAPSHOT_HOST",
    "port": "SNAPSHOT_PORT",
    "interval": "SNAPSHOT_INTERVAL",
    "cooldown": "SNAPSHOT_COOLDOWN",
    "command": "SNAPSHOT_COMMAND",
    "data_dir": "SNAPSHOT_DATA_DIR",
    "triggers_dir": "SNAPSHOT_TRIGGERS_DIR",
    "url": "SNAPSHOT_URL",
    "log_level": "SNAPSHOT_LOG_LEVEL",
    "timeout": "SNAPSHOT_TIMEOUT",
    "stall_timeout": "SNAPSHOT_STALL_TIMEOUT",
    "kill_grace": "SNAPSHOT_KILL_GRACE",
    "token": "SNAPSHOT_TOKEN",
    "token_for_reads": "SNAPSHOT_TOKEN_FOR_READS",
    "allow_origin": "SNAPSHOT_ALLOW_ORIGIN",
    "allowed_host": "SNAPSHOT_ALLOWED_HOSTS",
    "frame_ancestor": "SNAPSHOT_FRAME_ANCESTORS",
    "trigger_limit": "SNAPSHOT_TRIGGER_LIMIT",
    "streams_per_client": "SNAPSHOT_STREAMS_PER_CLIENT",
    "connections_per_client": "SNAPSHOT_CONNECTIONS_PER_CLIENT",
    "trusted_proxy": "SNAPSHOT_TRUSTED_PROXIES",
    # Run logs and retention (issue 4: logs).
    "keep_runs": "SNAPSHOT_KEEP_RUNS",
    "keep_days": "SNAPSHOT_KEEP_DAYS",
    # Notifications and missed-run checks (issue 4: notify).
    "public_url": "SNAPSHOT_PUBLIC_URL",
    "notify_url": "SNAPSHOT_NOTIFY_URLS",
    "notify_on": "SNAPSHOT_NOTIFY_ON",
    "notify_secret": "SNAPSHOT_NOTIFY_SECRET",
    "notify_backoff": "SNAPSHOT_NOTIFY_BACKOFF",
    "smtp_host": "SNAPSHOT_SMTP_HOST",
    "smtp_port": "SNAPSHOT_SMTP_PORT",
    "smtp_security": "SNAPSHOT_SMTP_SECURITY",
    "smtp_user": "SNAPSHOT_SMTP_USER",
    "smtp_password": "SNAPSHOT_SMTP_PASSWORD",
    "smtp_from": "SNAPSHOT_SMTP_FROM",
    "smtp_to": "SNAPSHOT_SMTP_TO",
    "late_grace": "SNAPSHOT_LATE_GRACE",
    "long_factor": "SNAPSHOT_LONG_FACTOR",
    "fast_factor": "SNAPSHOT_FAST_FACTOR",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snapshot-orchestrator",
        description="Run a slow job every N minutes or on demand, one at a time, with live progress.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command_name", metavar="{serve,trigger,status,cancel,pause,resume}")

    def folders(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", help="state and progress file folder (SNAPSHOT_DATA_DIR, default ./data)")
        p.add_argument("--triggers-dir", help="trigger folder (SNAPSHOT_TRIGGERS_DIR, default ./triggers)")

    serve = commands.add_parser("serve", help="run the API server and the scheduler (the default)")
    serve.add_argument("--host", help=f"address to listen on (SNAPSHOT_HOST, default {DEFAULT_HOST})")
    serve.add_argument("--port", help=f"port to listen on (SNAPSHOT_PORT, default {DEFAULT_PORT})")
    serve.add_argument(
        "--interval",
        help="minutes between automatic runs, fractions allowed "
        f"(SNAPSHOT_INTERVAL, default {DEFAULT_INTERVAL_MINUTES:g})",
    )
    serve.add_argument(
        "--cooldown",
        help="minutes after a manual run before the next automatic one "
        f"(SNAPSHOT_COOLDOWN, default {DEFAULT_COOLDOWN_MINUTES:g})",
    )
    serve.add_argument(
        "--command",
        help="the job's command line, split like a shell, run without one "
        "(SNAPSHOT_COMMAND; default: the bundled sample job)",
    )
    serve.add_argument("--log-level", help="debug, info, warning or error (SNAPSHOT_LOG_LEVEL, default info)")
    serve.add_argument(
        "--timeout",
        help="minutes a run may take before it is stopped and recorded as an error "
        "(SNAPSHOT_TIMEOUT, default 0 = no limit)",
    )
    serve.add_argument(
        "--stall-timeout",
        help="minutes a run may go without a progress change before it is stopped "
        "(SNAPSHOT_STALL_TIMEOUT, default 0 = never)",
    )
    serve.add_argument(
        "--kill-grace",
        help="seconds between SIGTERM and SIGKILL when a job is stopped "
        f"(SNAPSHOT_KILL_GRACE, default {DEFAULT_KILL_GRACE_SECONDS:g})",
    )
    serve.add_argument(
        "--token",
        help="require 'Authorization: Bearer TOKEN' on requests that change state "
        "(SNAPSHOT_TOKEN; prefer the variable, flags show in ps)",
    )
    serve.add_argument(
        "--token-for-reads",
        action="store_const",
        const="true",
        help="require the token for reading the API and events too (SNAPSHOT_TOKEN_FOR_READS=true)",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        help="a web origin (https://host:port) whose pages may call the API; repeatable "
        "(SNAPSHOT_ALLOW_ORIGIN, comma-separated)",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        help="a host name clients may address this service by (the Host header), besides loopback names, IP "
        "addresses and --allow-origin hosts; with any, other names get 403 whatever --host is (DNS rebinding); "
        "repeatable (SNAPSHOT_ALLOWED_HOSTS, comma-separated)",
    )
    serve.add_argument(
        "--frame-ancestor",
        action="append",
        help="a web origin (https://host:port) whose pages may show this page in a frame; none by default; "
        "repeatable (SNAPSHOT_FRAME_ANCESTORS, comma-separated)",
    )
    serve.add_argument(
        "--trigger-limit",
        help=f"HTTP triggers accepted per minute, then 429 (SNAPSHOT_TRIGGER_LIMIT, default {DEFAULT_TRIGGER_LIMIT}, "
        "0 = no limit)",
    )
    serve.add_argument(
        "--streams-per-client",
        help="event streams, and apart from them log streams, one client address may hold without the bearer "
        "token (as many again with the read cookie; 4 times that for one IPv6 /56), then 429 "
        f"(SNAPSHOT_STREAMS_PER_CLIENT, default {DEFAULT_STREAMS_PER_CLIENT}, 0 = no cap)",
    )
    serve.add_argument(
        "--connections-per-client",
        help="connections one client address may hold open (a --trusted-proxy's are not capped by address), at "
        "most half of all the service allows; more are closed at once "
        f"(SNAPSHOT_CONNECTIONS_PER_CLIENT, default {DEFAULT_CONNECTIONS_PER_CLIENT}, 0 = no cap)",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        help="a reverse proxy's address or network (10.0.0.5, 10.0.0.0/24): only from these is the client taken "
        "from X-Forwarded-For; repeatable (SNAPSHOT_TRUSTED_PROXIES, comma-separated)",
    )
    # Run logs and retention (issue 4: logs).
    serve.add_argument(
        "--keep-runs",
        help="runs kept in the history, with their logs, after each run "
        "(SNAPSHOT_KEEP_RUNS, default 100, 1 to 1000000)",
    )
    serve.add_argument(
        "--keep-days",
        help="also remove runs older than this many days (SNAPSHOT_KEEP_DAYS, default 0 = no age limit)",
    )
    notify_arguments(serve)
    folders(serve)

    trig = commands.add_parser(
        "trigger",
        help="ask for a run by dropping a file into the triggers folder (--wait: over HTTP, and follow the run)",
    )
    trig.add_argument("--reason", default="", help="why; recorded with the run")
    trig.add_argument(
        "--wait",
        action="store_true",
        help="trigger over HTTP and follow the run to its end with a progress bar; exit 0 if it completed, "
        "1 if it failed or was cancelled, 2 if it could not be followed",
    )
    trig.add_argument("--url", help=f"server address for --wait (SNAPSHOT_URL, default {DEFAULT_URL})")
    trig.add_argument("--token", help="the server's token, if it has one (SNAPSHOT_TOKEN)")
    folders(trig)

    stat = commands.add_parser("status", help="print the state, from the server or else from the data folder")
    stat.add_argument("--json", action="store_true", help="print the raw status document")
    stat.add_argument("--url", help=f"server address (SNAPSHOT_URL, default {DEFAULT_URL})")
    stat.add_argument("--token", help="the server's token, if reads need one (SNAPSHOT_TOKEN)")
    folders(stat)

    cancel = commands.add_parser("cancel", help="stop the running snapshot (recorded as cancelled)")
    cancel.add_argument("--reason", default="", help="why; recorded with the run")
    cancel.add_argument("--url", help=f"server address (SNAPSHOT_URL, default {DEFAULT_URL})")
    cancel.add_argument("--token", help="the server's token, if it has one (SNAPSHOT_TOKEN)")

    # Pause/resume of the automatic schedule (issue 4; the server side is orchestrator/http/pause.py).
    pause = commands.add_parser("pause", help="pause the automatic schedule (manual triggers still run)")
    pause.add_argument("--reason", default="", help="why; shown in the status")
    resume = commands.add_parser("resume", help="resume the automatic schedule")
    for sub in (pause, resume):
        sub.add_argument("--url", help=f"server address (SNAPSHOT_URL, default {DEFAULT_URL})")
        sub.add_argument("--token", help="the server's token, if it has one (SNAPSHOT_TOKEN)")
    return parser


def setting(args: argparse.Namespace, name: str, default: str | None, convert: Callable[[str], T]) -> T | None:
    """The flag if given, else the environment variable, else the default; converted."""
    raw = getattr(args, name, None)
    if isinstance(raw, list):
        raw = ",".join(raw)
    if raw is None:
        raw = os.environ.get(ENV_NAMES[name]) or default
    return None if raw is None else convert(raw)


def settings_from(args: argparse.Namespace) -> Settings:
    command = setting(args, "command", None, parse_command)
    return Settings(
        host=setting(args, "host", DEFAULT_HOST, str) or DEFAULT_HOST,
        port=setting(args, "port", str(DEFAULT_PORT), parse_port) or DEFAULT_PORT,
        interval_minutes=setting(
            args,
            "interval",
            str(DEFAULT_INTERVAL_MINUTES),
            lambda s: parse_minutes(s, "--interval", allow_zero=False),
        )
        or DEFAULT_INTERVAL_MINUTES,
        cooldown_minutes=setting(
            args,
            "cooldown",
            str(DEFAULT_COOLDOWN_MINUTES),
            lambda s: parse_minutes(s, "--cooldown", allow_zero=True),
        )
        or 0.0,
        command=command or sample_job_command(),
        data_dir=folder(args, "data_dir", "data"),
        triggers_dir=folder(args, "triggers_dir", "triggers"),
        timeout_minutes=setting(args, "timeout", "0", lambda s: parse_minutes(s, "--timeout", allow_zero=True)) or 0.0,
        stall_timeout_minutes=setting(
            args, "stall_timeout", "0", lambda s: parse_minutes(s, "--stall-timeout", allow_zero=True)
        )
        or 0.0,
        kill_grace_seconds=setting(
            args, "kill_grace", str(DEFAULT_KILL_GRACE_SECONDS), lambda s: parse_seconds(s, "--kill-grace")
        )
        or 0.0,
        token=setting(args, "token", None, parse_token),
        token_for_reads=bool(setting(args, "token_for_reads", "false", lambda s: parse_bool(s, "--token-for-reads"))),
        allow_origins=setting(args, "allow_origin", "", lambda s: parse_origins([s])) or (),
        allowed_hosts=setting(args, "allowed_host", "", parse_hosts) or (),
        frame_ancestors=setting(args, "frame_ancestor", "", lambda s: parse_origins([s], "--frame-ancestor")) or (),
        trigger_limit=setting(
            args, "trigger_limit", str(DEFAULT_TRIGGER_LIMIT), lambda s: parse_count(s, "--trigger-limit")
        )
        or 0,
        streams_per_client=setting(
            args,
            "streams_per_client",
            str(DEFAULT_STREAMS_PER_CLIENT),
            lambda s: parse_count(s, "--streams-per-client"),
        )
        or 0,
        connections_per_client=setting(
            args,
            "connections_per_client",
            str(DEFAULT_CONNECTIONS_PER_CLIENT),
            lambda s: parse_count(s, "--connections-per-client"),
        )
        or 0,
        trusted_proxies=setting(args, "trusted_proxy", "", parse_trusted_proxies) or (),
        keep_runs=setting(args, "keep_runs", "100", parse_keep_runs) or 100,
        keep_days=setting(args, "keep_days", "0", parse_keep_days) or 0.0,
        **notify_settings(args),
    )


def folder(args: argparse.Namespace, name: str, default: str) -> Path:
    """The folder, with symlinks resolved: inotify does not follow a symlink it is asked to watch (watchdog
    adds ``IN_DONT_FOLLOW``), so a watch on a linked folder would hear nothing of what happens in it."""
    return Path(setting(args, name, default, str) or default).expanduser().resolve()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "serve")
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        # ``status | head``: the reader has what it wanted. Point stdout at nothing, so that the interpreter's
        # own flush at exit does not raise (and print a traceback) again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command_name == "trigger":
            return cmd_trigger(args)
        if args.command_name == "status":
            return cmd_status(args)
        if args.command_name == "cancel":
            return cmd_cancel(args)
        if args.command_name in ("pause", "resume"):
            return cmd_pause_resume(args)
        return cmd_serve(args)
    except ConfigError as exc:
        # printable: the message may quote the service's answer or the user's --url.
        print(f"snapshot-orchestrator: error: {printable(str(exc))}", file=sys.stderr)
        return 2


def cmd_serve(args: argparse.Namespace) -> int:
    level_name = (setting(args, "log_level", "info", str) or "info").upper()
    level = logging.getLevelName(level_name)
    if not isinstance(level, int):
        raise ConfigError(f"--log-level must be debug, info, warning or error, got {level_name.lower()!r}")
    settings = settings_from(args)
    validate(settings)
    url = f"http://{settings.host}:{settings.port}/"
    lock = InstanceLock(settings.data_dir)
    try:
        lock.acquire({"pid": os.getpid(), "url": url, "startedAt": iso(utcnow())})
    except AlreadyLocked as exc:
        raise ConfigError(
            f"data folder {settings.data_dir} is in use by {exc.holder}; stop that one first, or give this one "
            "another --data-dir"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot lock {lock.path}: {exc.strerror or exc}") from None
    try:
        return serve(settings, level, url, lock)
    finally:
        lock.release()


def serve(settings: Settings, level: int, url: str, lock: InstanceLock) -> int:
    from aiohttp import web

    from orchestrator.http.app import create_app
    from orchestrator.service import Orchestrator

    raise_fd_limit()
    # The stream caps are a share of the descriptor limit: the one in force now, not the one the settings
    # were made under.
    settings = dataclasses.replace(
        settings, sse_max_clients=default_max_streams(), log_stream_max_clients=default_max_log_streams()
    )
    sock = bind_socket(settings.host, settings.port)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    httplog.install()
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("watchdog").setLevel(max(level, logging.INFO))  # its debug is one line per inotify event
    say_at_start(settings, lock)
    try:
        # An earlier version's files were 0644, its folders 0755.
        tighten(settings.data_dir, OWN_FILES, shared=settings.triggers_dir)
    except OSError as exc:
        log.warning("cannot make the data folder %s owner-only: %s", settings.data_dir, exc.strerror or exc)
    orchestrator = Orchestrator(settings, on_fatal=lambda: os.kill(os.getpid(), signal.SIGTERM))
    app = create_app(orchestrator)
    gate = ConnectionGate(connection_limits(settings), TrustedProxies(settings.trusted_proxies), clock=utcnow)
    log.info("snapshot-orchestrator %s listening on %s", __version__, url)
    # handler_cancellation: an SSE handler waiting for the next change must notice a client that left.
    # keepalive_timeout: aiohttp's default keeps an idle connection (and its descriptor) for an hour; aiohttp
    # 3.14 arms it at the connection's start too, so a request head that never completes is closed by then.
    web.run_app(
        app,
        sock=gated(sock, gate),  # connections over a cap are closed as they are accepted
        print=None,
        handler_cancellation=True,
        shutdown_timeout=5,
        keepalive_timeout=KEEPALIVE_SECONDS,
    )
    return 1 if orchestrator.failed else 0


def say_at_start(settings: Settings, lock: InstanceLock) -> None:
    """What guards the service, and every setting or finding at start that leaves it less guarded than meant."""
    if not is_loopback(settings.host) and not settings.token:
        log.warning(
            "LISTENING ON %s WITHOUT A TOKEN: anyone who can reach this port can start and cancel snapshots. "
            "Set SNAPSHOT_TOKEN (or --token), or listen on 127.0.0.1.",
            settings.host,
        )
    for name, guess in unknown_variables(os.environ):
        log.warning(
            "%s is not a setting of snapshot-orchestrator%s; it is ignored",
            name,
            f" (did you mean {guess}?)" if guess else "",
        )
    log.info("%s", protections(settings))
    if lock.replaced_link is not None:
        log.warning(
            "%s was a symlink to %r; not followed: removed it and locked a file of our own (its target is left "
            "as it is)",
            lock.path,
            lock.replaced_link,
        )
    if not is_loopback(settings.host) and not settings.allowed_hosts and not settings.token_for_reads:
        # With the token needed for reads too, a rebinding page (which has no token) gets 401 for everything.
        log.warning(
            "listening on %s for any host name: a web page whose DNS name is made to point at this machine (DNS "
            "rebinding) can read the status, history and logs through a visitor's browser%s. Set "
            "SNAPSHOT_ALLOWED_HOSTS (or --allowed-host) to the names clients use.",
            settings.host,
            "" if settings.token else ", and start and cancel snapshots",
        )


JOB_VARIABLES = frozenset({"SNAPSHOT_PROGRESS_FILE", "SNAPSHOT_RUN_ID", "SNAPSHOT_TRIGGER", "SNAPSHOT_REASON"})
"""What the service sets for its job (a service started from a job's environment has them too)."""


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """``SNAPSHOT_*`` variables that name no setting, each with the setting it most looks like: a typo
    (``SNAPSHOT_ALLOWED_HOST``) would otherwise leave a protection off without a word."""
    known = {*ENV_NAMES.values(), *JOB_VARIABLES}
    found = []
    for name in sorted(environ):
        if name.startswith("SNAPSHOT_") and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
            found.append((name, close[0] if close else None))
    return found


def protections(settings: Settings) -> str:
    """One line of what guards the HTTP surface, so that a setting that did not take is seen at start."""
    token = "off" if not settings.token else ("on, reads too" if settings.token_for_reads else "on, for changes")
    if settings.allowed_hosts:
        hosts = ", ".join(settings.allowed_hosts) + ", loopback names and IP addresses"
    else:
        hosts = "loopback names and IP addresses" if is_loopback(settings.host) else "any"
    return (
        f"token: {token}; host names answered: {hosts}; other origins: {', '.join(settings.allow_origins) or 'none'}; "
        f"trusted proxies: {', '.join(map(str, settings.trusted_proxies)) or 'none'}"
    )


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The caps on open connections, from the settings and the descriptor limit in force now (after
    :func:`raise_fd_limit`); said once at start."""
    limit = descriptor_limit()
    limits = limits_for(settings.connections_per_client, derived_total(limit))
    log.info(
        "connections: at most %s open (descriptor limit %s), %s from one client address",
        limits.total or "any number",
        limit if limit is not None else "none",
        limits.per_client or "any number",
    )
    return limits


def raise_fd_limit() -> None:
    """Soft file descriptor limit up to the hard one (systemd's soft default is 1024): every connection and
    event stream holds one, and running out would also keep the job from getting its pipes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def cmd_trigger(args: argparse.Namespace) -> int:
    if args.wait:
        return trigger_and_wait(args)
    triggers_dir = folder(args, "triggers_dir", "triggers")
    try:
        path = write_trigger_file(triggers_dir, args.reason, utcnow())
    except OSError as exc:
        raise ConfigError(f"cannot write a trigger into {triggers_dir}: {exc.strerror or exc}") from None
    print(f"Snapshot requested ({path}); it runs as soon as the service takes the file.")
    return 0


def trigger_and_wait(args: argparse.Namespace) -> int:
    """``trigger --wait``: an HTTP trigger (so the service names its time), then the run followed to its end."""
    from orchestrator.cli.follow import Display, Exit, Follower, Lost, outcome_exit, summary

    url = server_url(args)
    headers = auth_headers(args)
    # One key per invocation: if the request is retried on its way (a proxy), still one run.
    answer = post_reason(url, "trigger", args.reason, {"Idempotency-Key": str(uuid.uuid4()), **headers})
    requested_at = parse_iso(answer.get("requestedAt"))
    if requested_at is None:
        raise ConfigError(f"{url} did not say when the trigger was taken (an older service?); cannot follow the run")
    display = Display(sys.stderr)
    display.waiting(str(answer.get("message") or "Snapshot triggered"))
    try:
        record = Follower(url, headers, display=display).follow(requested_at, queued=answer.get("queued") is True)
    except urllib.error.HTTPError as exc:
        raise refused_by(url, exc) from None
    except Lost as exc:
        display.close()
        print(f"snapshot-orchestrator: stopped waiting: {printable(str(exc))}", file=sys.stderr)
        return Exit.TROUBLE
    except KeyboardInterrupt:
        display.close()
        print("snapshot-orchestrator: stopped waiting; the snapshot goes on", file=sys.stderr)
        return Exit.INTERRUPTED
    finally:
        display.close()
    print(summary(record))
    return int(outcome_exit(record))


def cmd_status(args: argparse.Namespace) -> int:
    url = server_url(args)
    source = f"server {url}"
    request = urllib.request.Request(f"{url}/api/snapshot/status", headers=auth_headers(args))
    try:
        with open_url(request, timeout=5) as response:
            document: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as exc:
        raise refused_by(url, exc) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        document = offline_status(folder(args, "data_dir", "data"))
        source = f"data folder (server {url} unreachable: {getattr(exc, 'reason', exc)})"
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        if document.get("serverUp") is False:
            runs = read_recent(folder(args, "data_dir", "data") / HISTORY_FILE_NAME, RECENT_RUNS)
        else:
            runs = recent_runs(url, auth_headers(args))
        print(format_status(document, source, runs))
    return 0


def recent_runs(url: str, headers: dict[str, str], count: int = RECENT_RUNS) -> list[dict[str, Any]]:
    """The last runs from the history, or none if it cannot be read (the status is still worth showing)."""
    request = urllib.request.Request(f"{url}/api/snapshot/runs?limit={count}", headers=headers)
    try:
        with open_url(request, timeout=5) as response:
            page = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return []
    runs = page.get("runs") if isinstance(page, dict) else None
    return [run for run in runs if isinstance(run, dict)] if isinstance(runs, list) else []


def cmd_cancel(args: argparse.Namespace) -> int:
    url = server_url(args)
    try:
        answer = post_reason(url, "cancel", args.reason, auth_headers(args), expected=(409,))
    except Refused as refused:
        print(f"Nothing to cancel: {refused.message}")
        return 1
    print(printable(str(answer.get("message", "Cancelling"))))
    return 0


def cmd_pause_resume(args: argparse.Namespace) -> int:
    """``pause [--reason R]`` / ``resume``: 0 when the schedule is now as asked (also if it already was)."""
    answer = post_reason(server_url(args), args.command_name, getattr(args, "reason", ""), auth_headers(args))
    print(printable(str(answer.get("message", args.command_name.capitalize() + "d"))))
    return 0


class Refused(Exception):
    """The service answered with one of the statuses the caller said it expects (``post_reason``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def post_reason(
    url: str, action: str, reason: str, headers: dict[str, str], *, expected: tuple[int, ...] = ()
) -> dict[str, Any]:
    """``POST /api/snapshot/<action>`` with an optional ``{"reason": ...}``; the JSON answer. An ``expected``
    refusal is :class:`Refused`; any other refusal, or no answer, is a :class:`ConfigError` (exit 2)."""
    request = urllib.request.Request(
        f"{url}/api/snapshot/{action}",
        data=json.dumps({"reason": reason}).encode() if reason else b"",
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with open_url(request, timeout=10) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code in expected:
            raise Refused(exc.code, error_message(exc)) from None
        raise refused_by(url, exc) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
    return answer if isinstance(answer, dict) else {}


def server_url(args: argparse.Namespace) -> str:
    """``--url`` (``SNAPSHOT_URL``) as ``http(s)://host[:port]`` (a path prefix, as behind a proxy, is kept).
    Anything else is a :class:`ConfigError`: urllib would take ``127.0.0.1:8001`` for a scheme of its own, and
    ``status`` would then report a running service as down."""
    raw = setting(args, "url", DEFAULT_URL, str) or DEFAULT_URL
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
    token = setting(args, "token", None, str)
    return {"Authorization": f"Bearer {token}"} if token else {}


def refused_by(url: str, error: urllib.error.HTTPError) -> ConfigError:
    """The one line for an error answer: a redirect says what it is (it was not followed), any other answer
    its status and message."""
    if isinstance(error, Redirected):
        return ConfigError(str(error))
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


def offline_status(data_dir: Path) -> dict[str, Any]:
    """What the files say when the server is down: the progress document and the last run."""
    from orchestrator.disk.atomic import InvalidDocument, read_json_object

    def read(name: str) -> dict[str, Any]:
        try:
            return read_json_object(data_dir / name)
        except (OSError, InvalidDocument):
            return {}

    progress = read(PROGRESS_FILE_NAME)
    state = read(STATE_FILE_NAME)
    last = state.get("current") or state.get("lastRun") or {}
    return {
        "running": False,
        "serverUp": False,
        "lastRunAt": last.get("startedAt") if isinstance(last, dict) else None,
        "nextRunAt": None,
        "progress": {k: progress.get(k) for k in ("status", "step", "progress")} if progress else None,
        "lastRun": state.get("lastRun"),
        # pendingCount: the file names at most 100 pending triggers and counts the rest.
        "pendingTriggers": _count(state.get("pendingCount")) or len(state.get("pending") or []),
        "paused": state.get("paused"),
        "checkedAt": iso(utcnow()),
    }


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def format_status(doc: dict[str, Any], source: str, runs: Sequence[dict[str, Any]] = ()) -> str:
    """The status for people: what runs now, what comes next, and the last runs (newest first)."""
    from orchestrator.cli.follow import duration_text

    progress = doc.get("progress") or {}
    lines = [f"Source:   {source}"]
    where = f"{progress.get('progress', 0)}% - {progress.get('step', '')}"
    eta = doc.get("eta") or {}
    if isinstance(eta, dict) and eta.get("secondsLeft") is not None:
        where += f", about {duration_text(eta['secondsLeft'])} left"
    paused = doc.get("paused") or None
    if doc.get("stopping"):
        lines.append(f"State:    stopping ({doc['stopping']}), {where}")
    elif doc.get("running"):
        lines.append(f"State:    running, {where}")
    elif doc.get("serverUp") is False:
        lines.append("State:    service not running")
    elif paused:
        lines.append("State:    idle")
    else:
        lines.append(f"State:    idle, next snapshot in {until_text(doc)} ({doc.get('nextRunAt')})")
    if isinstance(paused, dict):
        why = f": {paused['reason']}" if paused.get("reason") else ""
        lines.append(f"Paused:   since {paused.get('since')}{why} (automatic snapshots off; resume to restart them)")
    for check in doc.get("checks") or []:
        if isinstance(check, dict):
            lines.append(f"Warning:  {check.get('message')}")
    if doc.get("pendingTriggers"):
        lines.append(f"Queued:   {doc['pendingTriggers']} trigger(s) waiting")
    if runs:
        lines.append("Last runs:")
        for run in runs:
            trigger = str(run.get("trigger", "?"))
            if (run.get("triggerCount") or 1) > 1:
                trigger += f" + {run['triggerCount'] - 1} more"
            reason = f" ({run['reason']})" if run.get("reason") else ""
            error = first_line(str(run.get("error") or ""))
            took = duration_text(run.get("durationSeconds")) if run.get("finishedAt") else "..."
            line = f"  {run.get('startedAt')}  {run.get('status', '?'):<9} {took:>8}  {trigger}{reason}"
            lines.append(line + (f" - {error}" if error else ""))
        return printed(lines)
    last = doc.get("lastRun") or {}
    if last:
        lines.append(f"Last run: {last.get('status')} at {last.get('startedAt')}, trigger {last.get('trigger')}")
        if last.get("error"):
            lines.append(f"Error:    {first_line(str(last['error']))}")
    else:
        lines.append(f"Last run: {doc.get('lastRunAt') or 'never'}")
    return printed(lines)


def printed(lines: list[str]) -> str:
    """The lines of :func:`format_status`, each printable: every value in them (step, error, reason, check
    message, run id) comes from the service, and much of it from outsiders."""
    return "\n".join(printable(line) for line in lines)


def until_text(doc: dict[str, Any]) -> str:
    """``3 s`` under a minute (``secondsUntilNextRun``), else ``12 min`` (whole minutes, rounded up)."""
    seconds = doc.get("secondsUntilNextRun")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and 0 <= seconds <= 59:
        return f"{math.ceil(seconds)} s"
    return f"{doc.get('minutesUntilNextRun')} min"


# ---------------------------------------------------------------- notifications and checks (issue 4: notify)
def notify_arguments(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group("notifications and missed-run checks (README: Notifications)")
    add = group.add_argument
    add("--public-url", help="where people reach this service, for links in notifications (SNAPSHOT_PUBLIC_URL)")
    add(
        "--notify-url",
        action="append",
        help="POST each run's news to this http(s) URL; repeatable (SNAPSHOT_NOTIFY_URLS, comma-separated)",
    )
    add("--notify-on", help="events sent to webhooks: start,success,failure,long (SNAPSHOT_NOTIFY_ON, default all)")
    add("--notify-secret", help="sign webhook bodies with HMAC-SHA256 (SNAPSHOT_NOTIFY_SECRET; prefer the variable)")
    add(
        "--notify-backoff",
        help="seconds before the first retry of a failed delivery, doubling, 5 tries "
        "(SNAPSHOT_NOTIFY_BACKOFF, default 1)",
    )
    add("--smtp-host", help="mail failures through this SMTP server (SNAPSHOT_SMTP_HOST)")
    add("--smtp-port", help="its port (SNAPSHOT_SMTP_PORT, default 587 starttls, 465 ssl, 25 none)")
    add("--smtp-security", help="none, starttls or ssl (SNAPSHOT_SMTP_SECURITY, default starttls)")
    add("--smtp-user", help="SMTP login (SNAPSHOT_SMTP_USER)")
    add("--smtp-password", help="SMTP password (prefer SNAPSHOT_SMTP_PASSWORD: flags show in ps)")
    add("--smtp-from", help="sender address (SNAPSHOT_SMTP_FROM, default snapshot-orchestrator@<hostname>)")
    add("--smtp-to", action="append", help="recipient; repeatable (SNAPSHOT_SMTP_TO, comma-separated)")
    add(
        "--late-grace",
        help="minutes after its due time before a scheduled run is 'late' (SNAPSHOT_LATE_GRACE, default 5, 0 = off)",
    )
    add(
        "--long-factor",
        help="a run longer than this x the median of recent completed runs is 'long' "
        "(SNAPSHOT_LONG_FACTOR, default 2, 0 = off)",
    )
    add(
        "--fast-factor",
        help="a completed run shorter than this x that median is 'fast' (SNAPSHOT_FAST_FACTOR, default 0.2, 0 = off)",
    )


def notify_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`Settings` fields of the notifications, from flags and environment."""
    if getattr(args, "smtp_password", None) is not None:
        print(
            "snapshot-orchestrator: warning: --smtp-password shows in ps and shell history; "
            "prefer SNAPSHOT_SMTP_PASSWORD",
            file=sys.stderr,
        )
    port = setting(args, "smtp_port", None, lambda s: parse_port(s, "--smtp-port"))
    return {
        "public_url": setting(args, "public_url", None, str) or None,
        "notify_urls": setting(args, "notify_url", "", parse_notify_urls) or (),
        "notify_on": setting(args, "notify_on", "start,success,failure,long", parse_notify_on),
        "notify_secret": setting(args, "notify_secret", None, str) or None,
        "notify_backoff_seconds": setting(
            args, "notify_backoff", "1", lambda s: max(0.01, parse_seconds(s, "--notify-backoff"))
        ),
        "smtp_host": setting(args, "smtp_host", None, str) or None,
        "smtp_port": port,
        "smtp_security": setting(args, "smtp_security", "starttls", parse_security),
        "smtp_user": setting(args, "smtp_user", None, str) or None,
        "smtp_password": setting(args, "smtp_password", None, str) or None,
        "smtp_from": setting(args, "smtp_from", None, lambda s: parse_addresses(s, "--smtp-from")[0]),
        "smtp_to": setting(args, "smtp_to", "", lambda s: parse_addresses(s, "--smtp-to")) or (),
        "late_grace_minutes": setting(
            args, "late_grace", "5", lambda s: parse_minutes(s, "--late-grace", allow_zero=True)
        ),
        "long_factor": setting(args, "long_factor", "2", lambda s: parse_factor(s, "--long-factor", above_one=True)),
        "fast_factor": setting(args, "fast_factor", "0.2", lambda s: parse_factor(s, "--fast-factor", above_one=False)),
    }
