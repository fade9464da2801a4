"""Settings: nested frozen sections (``http``, ``job``, ``store``, ``notify``), built from flags and environment by
the CLI (orchestrator/cli/options.py) and checked once, by :func:`validate`. Nothing here touches the disk or the
network: what needs them (the command on PATH, writable folders, the port) is checked at start, by the CLI."""

from __future__ import annotations

import ipaddress
import re
import resource
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from orchestrator.live.progress import PROGRESS_FILE_NAME
from orchestrator.store.statefile import STATE_FILE_NAME

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8001
DEFAULT_INTERVAL_MINUTES = 30.0
DEFAULT_COOLDOWN_MINUTES = 5.0
DEFAULT_KILL_GRACE_SECONDS = 10.0
MAX_MINUTES = 525_600
"""A year: longer intervals and limits are typos, and dates much further out do not fit a datetime."""
MAX_SECONDS = 3600
"""The longest kill grace: a job that needs more than an hour to stop is not stopping."""
DEFAULT_TRIGGER_LIMIT = 30
"""HTTP triggers accepted per minute; runs coalesce anyway, so more than this is a script gone wrong."""
NOTIFY_EVENTS = ("start", "success", "failure", "long")
"""Webhook events, all sent by default (``--notify-on``)."""
DEFAULT_STREAMS_PER_CLIENT = 20
"""Event streams (and, apart, log streams) one client address may hold without the token: a page holds one
event stream, so this is twenty tabs, or a small office behind one NAT address; one script gets no further."""

DEFAULT_CONNECTIONS_PER_CLIENT = 256
"""Connections one client address may hold (each holds a file descriptor, whatever it sends): a browser keeps
six to a host, so this is forty people behind one NAT address; one script gets no further."""

MailSecurity = Literal["none", "starttls", "ssl"]
"""How the SMTP connection is protected (orchestrator/ops/mail.py ``Security`` has the same values)."""
MAIL_SECURITIES: tuple[MailSecurity, ...] = ("none", "starttls", "ssl")


class ConfigError(ValueError):
    """A setting that cannot work; the message is one line meant for the user."""


def sample_job_command() -> tuple[str, ...]:
    """The bundled sample job, run by the same interpreter as the service."""
    return (sys.executable, "-m", "orchestrator.sample_job")


KEPT_FOR_THE_SERVICE = 64
"""Descriptors never given to connections (at least): the service holds about 25 when idle (stdio, the lock,
inotify, the event loop, the listening socket) and a few more during a run (the job's pipes, its log, the
history with SQLite's ``-wal`` and ``-shm``, a state or progress write, a webhook)."""
KEPT_SHARE = 8
"""Of a large limit, an eighth is kept instead, for whatever grows with it (more notification targets)."""
STREAMS_SHARE = (3, 5)
"""Of the connections allowed, the share event streams may hold by default: with the log streams (a quarter of
that) they hold three quarters, and the last quarter stays for the page's other requests."""


def descriptor_limit() -> int | None:
    """The process's soft descriptor limit now (``None``: unlimited)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def connections_allowed(descriptor_limit: int | None) -> int:
    """The connections a process with ``descriptor_limit`` may hold (``None``: no limit, then no cap): the limit
    less an eighth of it, at least :data:`KEPT_FOR_THE_SERVICE`, kept for the job's pipes and the service's files."""
    if descriptor_limit is None:
        return 0
    kept = max(KEPT_FOR_THE_SERVICE, descriptor_limit // KEPT_SHARE)
    return max(1, descriptor_limit - kept)


UNLIMITED_STREAMS = 100_000
"""Event streams allowed by default when the descriptor limit is unlimited."""


def default_max_streams(limit: int | None = None) -> int:
    """Event streams allowed when ``--max-streams`` is not given: three fifths of the connections the descriptor
    limit allows (``limit``; by default the one in force now), at least 16 (10,500 under a limit of 20,000, 537
    under 1,024). Raising the limit (``LimitNOFILE=`` under systemd) raises this too."""
    allowed = connections_allowed(descriptor_limit() if limit is None else limit)
    if not allowed:
        return UNLIMITED_STREAMS
    return max(16, allowed * STREAMS_SHARE[0] // STREAMS_SHARE[1])


def max_log_streams(max_streams: int) -> int:
    """A quarter of the event streams allowed (at least 4): a log is watched by a few people, not by every page."""
    return max(4, max_streams // 4)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Where the service listens and what guards it."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = field(default=None, repr=False)
    """Bearer token required for state-changing requests (and reads too with ``token_for_reads``)."""
    token_for_reads: bool = False
    allow_origins: tuple[str, ...] = ()
    """Other web origins that may call the API from a browser (they get CORS headers)."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names requests may name (``Host``) besides loopback names, IP addresses and the hosts of
    ``allow_origins``; with any, the ``Host`` is checked whatever the address listened on (DNS rebinding)."""
    frame_ancestors: tuple[str, ...] = ()
    """Origins whose pages may frame ours (CSP ``frame-ancestors``); none: no page may."""
    trigger_limit: int = DEFAULT_TRIGGER_LIMIT
    """HTTP triggers per minute before 429; 0 = no limit."""
    sse_ping_seconds: float = 15.0
    sse_send_timeout: float = 10.0
    """An event stream client that has not taken an event for this long is dropped."""
    sse_max_clients: int | None = None
    """Open event streams beyond this get 503 (``--max-streams``): each holds a file descriptor, and the job needs
    some too. ``None``: :func:`default_max_streams` of the descriptor limit in force when the app is made."""
    log_stream_max_clients: int | None = None
    """Open log streams beyond this get 503; counted apart from event streams, so neither starves the other.
    ``None``: a quarter of the event streams (:func:`max_log_streams`)."""
    streams_per_client: int = DEFAULT_STREAMS_PER_CLIENT
    """Streams of each kind one client address may hold without the token, then 429; 0 = no cap."""
    connections_per_client: int = DEFAULT_CONNECTIONS_PER_CLIENT
    """Open connections one client address may hold (a ``--trusted-proxy``'s are not capped by address), then
    closed at once; never more than half of all the service allows (orchestrator/http/connlimits.py, from the
    descriptor limit); 0 = no cap by address."""
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    """Peers whose ``X-Forwarded-For`` names the client (orchestrator/http/clientaddr.py); anyone else's is ignored."""

    def max_streams(self) -> int:
        """The event streams allowed: as set, or derived from the descriptor limit in force now."""
        return self.sse_max_clients if self.sse_max_clients is not None else default_max_streams()

    def max_log_streams(self) -> int:
        """The log streams allowed: as set, or a quarter of the event streams."""
        if self.log_stream_max_clients is not None:
            return self.log_stream_max_clients
        return max_log_streams(self.max_streams())


class RunLimits:
    """A job's limits in minutes (as flags and jobs files say them), as durations (as the runner takes them)."""

    __slots__ = ()
    cooldown_minutes: float
    timeout_minutes: float
    stall_timeout_minutes: float

    @property
    def cooldown(self) -> timedelta:
        return timedelta(minutes=self.cooldown_minutes)

    @property
    def timeout(self) -> timedelta | None:
        return timedelta(minutes=self.timeout_minutes) if self.timeout_minutes else None

    @property
    def stall_timeout(self) -> timedelta | None:
        return timedelta(minutes=self.stall_timeout_minutes) if self.stall_timeout_minutes else None


@dataclass(frozen=True, slots=True)
class JobSettings(RunLimits):
    """The job, what asks for it (the schedule, the trigger folder) and how long it may take."""

    command: tuple[str, ...] = field(default_factory=sample_job_command)
    interval_minutes: float = DEFAULT_INTERVAL_MINUTES
    cooldown_minutes: float = DEFAULT_COOLDOWN_MINUTES
    triggers_dir: Path = Path("triggers")
    kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS
    timeout_minutes: float = 0.0
    """A run longer than this is stopped and recorded as an error ("timed out"); 0 = no limit."""
    stall_timeout_minutes: float = 0.0
    """A run whose progress has not changed for this long is stopped ("stalled"); 0 = never."""

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.interval_minutes)


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """The data folder (state, progress, history, run logs) and how much of the history is kept."""

    data_dir: Path = Path("data")
    keep_runs: int = 100
    """Runs kept in the history (with their log files) after each run; at least 1."""
    keep_days: float = 0.0
    """Runs older than this many days are removed too; 0 = no age limit."""

    @property
    def progress_path(self) -> Path:
        return self.data_dir / PROGRESS_FILE_NAME

    @property
    def state_path(self) -> Path:
        return self.data_dir / STATE_FILE_NAME


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    urls: tuple[str, ...] = field(default=(), repr=False)
    """Webhook URLs (they may hold credentials, so not in ``repr``)."""
    events: tuple[str, ...] = NOTIFY_EVENTS
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class MailSettings:
    """Mail through SMTP; no ``host``: no mail."""

    host: str | None = None
    port: int | None = None
    """``None``: by ``security`` (25, 587, 465)."""
    security: MailSecurity = "starttls"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str | None = None
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckSettings:
    """The missed-run checks (orchestrator/core/checks.py)."""

    late_grace_minutes: float = 5.0
    """A scheduled run that starts this long after it was due is "late"; 0 = no check."""
    long_factor: float = 2.0
    """A run longer than this x the median of recent completed runs is "long"; 0 = no check."""
    fast_factor: float = 0.2
    """A completed run shorter than this x that median is "fast"; 0 = no check."""


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """Telling people: webhooks, mail, and the checks that may be news."""

    public_url: str | None = None
    """Where people reach the service, for links in notifications; ``None``: ``http://host:port``."""
    backoff_seconds: float = 1.0
    """Wait after a failed delivery try; doubles with each try (5 tries in all)."""
    webhooks: WebhookSettings = WebhookSettings()
    mail: MailSettings = MailSettings()
    checks: CheckSettings = CheckSettings()


@dataclass(frozen=True, slots=True)
class Settings:
    http: HttpSettings = field(default_factory=HttpSettings)
    job: JobSettings = field(default_factory=JobSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    notify: NotifySettings = NotifySettings()


def validate(settings: Settings) -> None:
    """Settings that cannot work together; :class:`ConfigError` with one line for the user."""
    if settings.http.token_for_reads and not settings.http.token:
        raise ConfigError("--token-for-reads needs a --token (or SNAPSHOT_TOKEN)")
    check_notifications(settings.notify)


NOTIFY_URL = re.compile(r"^https?://[^/\s?#]+(?:[/?#]\S*)?$", re.IGNORECASE)


def check_notifications(notify: NotifySettings) -> None:
    """SMTP settings that cannot work together, and a public URL that is not one."""
    mail = notify.mail
    if mail.host and not mail.recipients:
        raise ConfigError("--smtp-host needs at least one --smtp-to (or SNAPSHOT_SMTP_TO) to send to")
    if mail.recipients and not mail.host:
        raise ConfigError("--smtp-to needs an --smtp-host (or SNAPSHOT_SMTP_HOST) to send through")
    if mail.host is None and (mail.user or mail.password or mail.sender):
        raise ConfigError("--smtp-user, --smtp-password and --smtp-from need an --smtp-host")
    if mail.user and not mail.password:
        raise ConfigError("--smtp-user needs a password: set SNAPSHOT_SMTP_PASSWORD")
    if mail.password and not mail.user:
        raise ConfigError("an SMTP password needs --smtp-user (or SNAPSHOT_SMTP_USER)")
    if not (mail.user or "").isascii() or not (mail.password or "").isascii():
        # smtplib encodes the login as ASCII: it would fail at the first mail, not here.
        raise ConfigError("--smtp-user and the SMTP password must be ASCII (Python's smtplib cannot send others)")
    url = notify.public_url
    if url is not None and not (NOTIFY_URL.match(url) and has_host(url)):
        shown = url.split("://", 1)[0] + "://…" if "@" in url else url
        raise ConfigError(f"--public-url must be an http:// or https:// URL, got {shown!r}")


def bad_notify_url(url: str) -> str | None:
    """Why ``url`` is no webhook URL (``must be an http:// or https:// URL with a host, got ...``), or ``None``;
    said without what follows the scheme when that may hold a password."""
    shown = url.split("://", 1)[0] + "://…" if "://" in url else url[:40]
    if not NOTIFY_URL.match(url):
        return f"must be an http:// or https:// URL with a host, got {shown!r}"
    try:
        parts = urlsplit(url)
        if parts.port == 0:  # a bad port or IPv6 host would fail later, at every delivery
            raise ValueError("Port out of range 1-65535")
    except ValueError as exc:
        return f"{url.split('://', 1)[0]}://…: {exc}"
    if not parts.hostname:  # "http://user:pw@" or "http://:80": every delivery would fail
        return f"must be an http:// or https:// URL with a host, got {shown!r}"
    return None


def has_host(url: str) -> bool:
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
