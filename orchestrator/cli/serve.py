"""``serve``: the settings checked, the data folder locked, logging set up, what guards the service said once,
and the service run on its socket until it is stopped."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import resource
import signal
import sys
from pathlib import Path

from orchestrator import __version__
from orchestrator.cli.announce import say_at_start
from orchestrator.cli.options import option, refuse_job_options, settings_from
from orchestrator.cli.startup import bind_socket, check_at_start, lock_data_folder, read_jobs_file
from orchestrator.config import ConfigError, Settings, connections_allowed, descriptor_limit
from orchestrator.core.events import utcnow
from orchestrator.core.printable import printable
from orchestrator.disk.datadir import OwnFiles, tighten
from orchestrator.http import accesslog
from orchestrator.http.clientaddr import TrustedProxies
from orchestrator.http.connlimits import ConnectionGate, ConnectionLimits, gated, limits_for
from orchestrator.jobsfile.model import JobsFile
from orchestrator.live.progress import PROGRESS_FILE_NAME
from orchestrator.store.history import HISTORY_FILE_NAME
from orchestrator.store.lock import LOCK_FILE_NAME, InstanceLock
from orchestrator.store.runlogs import LOG_NAME
from orchestrator.store.statefile import STATE_FILE_NAME

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15
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


def cmd_serve(args: argparse.Namespace) -> int:
    refuse_job_options(args)
    level_name = str(option("--log-level").value(args)).upper()
    level = logging.getLevelName(level_name)
    if not isinstance(level, int):
        raise ConfigError(f"--log-level must be debug, info, warning or error, got {level_name.lower()!r}")
    settings = settings_from(args)
    raised = raise_fd_limit()
    settings = with_stream_caps(settings)
    path: Path | None = option("--jobs").value(args)
    jobs = read_jobs_file(path) if path is not None else None
    check_at_start(settings, jobs_file=jobs is not None)
    url = f"http://{settings.http.host}:{settings.http.port}/"
    lock = lock_data_folder(settings.store.data_dir, url)
    try:
        return serve(settings, level, url, lock, jobs=jobs, path=path, raised=raised)
    finally:
        lock.release()


def serve(
    settings: Settings,
    level: int,
    url: str,
    lock: InstanceLock,
    *,
    jobs: JobsFile | None = None,
    path: Path | None = None,
    raised: tuple[int, str] = (logging.DEBUG, ""),
) -> int:
    from aiohttp import web

    from orchestrator.http.app import create_app
    from orchestrator.service import Orchestrator

    sock = bind_socket(settings.http.host, settings.http.port)
    setup_logging(level)
    if raised[1]:
        log.log(*raised)
    say_at_start(settings, lock)
    try:
        # A data folder made by an older version holds 0644 files and 0755 folders.
        tighten(settings.store.data_dir, OWN_FILES, shared=settings.job.triggers_dir)
    except OSError as exc:
        log.warning("cannot make the data folder %s owner-only: %s", settings.store.data_dir, exc.strerror or exc)
    orchestrator = Orchestrator(
        settings,
        jobs=jobs,
        load_jobs=(lambda: read_jobs_file(path)) if path is not None else None,
        on_fatal=lambda: os.kill(os.getpid(), signal.SIGTERM),
    )
    app = create_app(orchestrator)
    gate = ConnectionGate(connection_limits(settings), TrustedProxies(settings.http.trusted_proxies), clock=utcnow)
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


def setup_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    accesslog.install()
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("watchdog").setLevel(max(level, logging.INFO))  # its debug is one line per inotify event


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The caps on open connections, from the settings and the descriptor limit in force now (after
    :func:`raise_fd_limit`); said once at start."""
    limit = descriptor_limit()
    limits = limits_for(settings.http.connections_per_client, connections_allowed(limit))
    log.info(
        "connections: at most %s open (descriptor limit %s), %s from one client address; event streams: at most "
        "%d, log streams: at most %d",
        limits.total or "any number",
        limit if limit is not None else "none",
        limits.per_client or "any number",
        settings.http.max_streams(),
        settings.http.max_log_streams(),
    )
    return limits


def with_stream_caps(settings: Settings) -> Settings:
    """``settings`` with the stream caps derived from the descriptor limit in force now (after
    :func:`raise_fd_limit`), not the one the settings were made under; :class:`ConfigError` for a
    ``--max-streams`` the limit cannot hold."""
    http = settings.http
    allowed = connections_allowed(descriptor_limit())
    if http.sse_max_clients is not None and allowed and http.sse_max_clients > allowed:
        raise ConfigError(
            f"--max-streams {http.sse_max_clients} is more than the {allowed} connections the file descriptor "
            f"limit ({descriptor_limit()}) allows: raise the limit (ulimit -n, LimitNOFILE=) or ask for fewer"
        )
    http = dataclasses.replace(http, sse_max_clients=http.max_streams(), log_stream_max_clients=http.max_log_streams())
    return dataclasses.replace(settings, http=http)


def raise_fd_limit() -> tuple[int, str]:
    """Soft file descriptor limit up to the hard one (systemd's soft default is 1024): every connection and
    event stream holds one, and running out would also keep the job from getting its pipes. What to log (level,
    line; no line when there was nothing to raise), said once logging is set up."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft == resource.RLIM_INFINITY:
        return logging.DEBUG, ""
    if soft >= wanted:
        return logging.INFO, f"file descriptor limit {soft}: the hard limit already, it cannot be raised"
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as exc:
        return logging.WARNING, f"file descriptor limit: cannot raise it from {soft} to {wanted} ({exc}), it stays"
    said = " (the hard limit)" if wanted == hard else ""
    return logging.INFO, f"file descriptor limit raised from {soft} to {wanted}{said}"
