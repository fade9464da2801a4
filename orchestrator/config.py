"""Settings: one frozen dataclass, built from flags and environment by the CLI and validated once."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import math
import os
import re
import resource
import shlex
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.disk.datadir import make_data_folder
from orchestrator.http.clientaddr import Network, parse_network
from orchestrator.http.hostheader import is_ip
from orchestrator.live.progress import PROGRESS_FILE_NAME
from orchestrator.ops.mail import Security
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


class ConfigError(ValueError):
    """A setting that cannot work; the message is one line meant for the user."""


def sample_job_command() -> tuple[str, ...]:
    """The bundled sample job, run by the same interpreter as the service."""
    return (sys.executable, "-m", "orchestrator.sample_job")


def default_max_streams() -> int:
    """Half the process's file descriptor limit (at most 2000): the rest is for the job's pipes, the files and
    the page's other requests. Raising the limit (``LimitNOFILE=`` under systemd) raises this too."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 2000
    return max(16, min(2000, soft // 2))


def default_max_log_streams() -> int:
    """A quarter of the event streams allowed (at least 4): a log is watched by a few people, not by every page."""
    return max(4, default_max_streams() // 4)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    interval_minutes: float = DEFAULT_INTERVAL_MINUTES
    cooldown_minutes: float = DEFAULT_COOLDOWN_MINUTES
    command: tuple[str, ...] = field(default_factory=sample_job_command)
    data_dir: Path = Path("data")
    triggers_dir: Path = Path("triggers")
    kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS
    timeout_minutes: float = 0.0
    """A run longer than this is stopped and recorded as an error ("timed out"); 0 = no limit."""
    stall_timeout_minutes: float = 0.0
    """A run whose progress has not changed for this long is stopped ("stalled"); 0 = never."""
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
    sse_max_clients: int = field(default_factory=default_max_streams)
    """Open event streams beyond this get 503: each holds a file descriptor, and the job needs some too."""
    log_stream_max_clients: int = field(default_factory=default_max_log_streams)
    """Open log streams beyond this get 503; counted apart from event streams, so neither starves the other."""
    streams_per_client: int = DEFAULT_STREAMS_PER_CLIENT
    """Streams of each kind one client address may hold without the token, then 429; 0 = no cap."""
    connections_per_client: int = DEFAULT_CONNECTIONS_PER_CLIENT
    """Open connections one client address may hold (a ``--trusted-proxy``'s are not capped by address), then
    closed at once; never more than half of all the service allows (orchestrator/http/connlimits.py, from the
    descriptor limit); 0 = no cap by address."""
    trusted_proxies: tuple[Network, ...] = ()
    """Peers whose ``X-Forwarded-For`` names the client (orchestrator/http/clientaddr.py); anyone else's is ignored."""
    # Run logs and retention (issue 4: logs).
    keep_runs: int = 100
    """Runs kept in the history (with their log files) after each run; at least 1."""
    keep_days: float = 0.0
    """Runs older than this many days are removed too; 0 = no age limit."""
    # Notifications and missed-run checks (issue 4: notify; orchestrator/ops/notify.py, webhook.py, mail.py, checks.py).
    public_url: str | None = None
    """Where people reach the service, for links in notifications; ``None``: ``http://host:port``."""
    notify_urls: tuple[str, ...] = field(default=(), repr=False)
    """Webhook URLs (they may hold credentials, so not in ``repr``)."""
    notify_on: tuple[str, ...] = NOTIFY_EVENTS
    notify_secret: str | None = field(default=None, repr=False)
    notify_backoff_seconds: float = 1.0
    """Wait after a failed delivery try; doubles with each try (5 tries in all)."""
    smtp_host: str | None = None
    smtp_port: int | None = None
    """``None``: by ``smtp_security`` (25, 587, 465)."""
    smtp_security: Security = Security.STARTTLS
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str | None = None
    smtp_to: tuple[str, ...] = ()
    late_grace_minutes: float = 5.0
    """A scheduled run that starts this long after it was due is "late"; 0 = no check."""
    long_factor: float = 2.0
    """A run longer than this x the median of recent completed runs is "long"; 0 = no check."""
    fast_factor: float = 0.2
    """A completed run shorter than this x that median is "fast"; 0 = no check."""

    @property
    def timeout(self) -> timedelta | None:
        return timedelta(minutes=self.timeout_minutes) if self.timeout_minutes else None

    @property
    def stall_timeout(self) -> timedelta | None:
        return timedelta(minutes=self.stall_timeout_minutes) if self.stall_timeout_minutes else None

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.interval_minutes)

    @property
    def cooldown(self) -> timedelta:
        return timedelta(minutes=self.cooldown_minutes)

    @property
    def progress_path(self) -> Path:
        return self.data_dir / PROGRESS_FILE_NAME

    @property
    def state_path(self) -> Path:
        return self.data_dir / STATE_FILE_NAME


def parse_minutes(text: str, name: str, *, allow_zero: bool) -> float:
    return _amount(text, name, "minutes", maximum=MAX_MINUTES, positive=not allow_zero, note=" (a year)")


def parse_seconds(text: str, name: str) -> float:
    return _amount(text, name, "seconds", maximum=MAX_SECONDS)


def _amount(
    text: str, name: str, unit: str, *, maximum: int, positive: bool = False, zero: str = "zero", note: str = ""
) -> float:
    """A finite number of ``unit``, from 0 (above it if ``positive``) to ``maximum``; ``zero`` names what 0
    is, ``note`` what the maximum is, in the messages."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number of {unit}, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and positive):
        bound = "more than zero" if positive else f"{zero} or more"
        raise ConfigError(f"{name} must be {bound} {unit}, got {text!r}")
    if value > maximum:
        raise ConfigError(f"{name} must be at most {maximum} {unit}{note}, got {text!r}")
    return value


def parse_count(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {text!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must be zero or more, got {value}")
    return value


def parse_bool(text: str, name: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {text!r}")


MAX_KEEP_DAYS = 36_500
MAX_KEEP_RUNS = 1_000_000
"""More is a typo (and past 2**63 SQLite cannot take the number at all: retention failed at every run)."""


def parse_keep_runs(text: str) -> int:
    """``--keep-runs``: a whole number, at least 1 (the running run is always kept)."""
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"--keep-runs must be a whole number of runs, got {text!r}") from None
    if value < 1:
        raise ConfigError(f"--keep-runs must be at least 1, got {value}")
    if value > MAX_KEEP_RUNS:
        raise ConfigError(f"--keep-runs must be at most {MAX_KEEP_RUNS}, got {text!r}")
    return value


def parse_keep_days(text: str) -> float:
    """``--keep-days``: days (fractions allowed), 0 = no age limit."""
    return _amount(text, "--keep-days", "days", maximum=MAX_KEEP_DAYS, zero="zero (no age limit)")


TOKEN_ALPHABET = re.compile(r"^[A-Za-z0-9._~+/=-]{8,512}$")
"""RFC 6750 bearer token characters; at least 8 of them, so a typo like ``--token 1`` is caught."""


def parse_token(text: str) -> str:
    if not TOKEN_ALPHABET.match(text):
        raise ConfigError(
            "--token must be 8 to 512 characters of letters, digits and ._~+/=- "
            "(for example: python -c 'import secrets; print(secrets.token_urlsafe())')"
        )
    return text


ORIGIN = re.compile(r"^https?://[^/\s?#@;,'\"]+$")


def parse_origins(values: list[str], name: str = "--allow-origin") -> tuple[str, ...]:
    """``--allow-origin`` (or ``--frame-ancestor``) values (each may hold several, split by commas or spaces)
    as exact origins."""
    origins: list[str] = []
    for value in values:
        for word in re.split(r"[,\s]+", value.strip()):
            if not word:
                continue
            origin = word.rstrip("/")
            if not ORIGIN.match(origin):
                raise ConfigError(
                    f"{name} must be an origin like https://dash.example.com:8443 (scheme, host, "
                    f"optional port, nothing after), got {origin!r}"
                )
            origins.append(origin.lower())
    return tuple(dict.fromkeys(origins))


def parse_trusted_proxies(text: str) -> tuple[Network, ...]:
    """``--trusted-proxy`` values (the flags joined by commas, or ``SNAPSHOT_TRUSTED_PROXIES``): addresses and
    networks (``10.0.0.5``, ``10.0.0.0/24``, ``::1``, ``fd00::/8``)."""
    networks: list[Network] = []
    for word in re.split(r"[,\s]+", text.strip()):
        if not word:
            continue
        try:
            networks.append(parse_network(word))
        except ValueError as exc:
            why = f" ({exc})" if "does not appear" not in str(exc) else ""  # host bits set, a scope: say which
            example = "an IP address or network like 10.0.0.5 or 10.0.0.0/24"
            raise ConfigError(f"--trusted-proxy must be {example}, got {word[:80]!r}{why}") from None
    return tuple(dict.fromkeys(networks))


HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$"
)


def parse_hosts(text: str) -> tuple[str, ...]:
    """``--allowed-host`` values (the flags joined by commas, or ``SNAPSHOT_ALLOWED_HOSTS``): host names as a
    ``Host`` header names them, without the port; lower case, without a trailing dot."""
    hosts: list[str] = []
    for word in re.split(r"[,\s]+", text.strip()):
        if not word:
            continue
        host = word.lower().removesuffix(".")
        if not (HOST_NAME.match(host) or is_ip(host.strip("[]"))):
            raise ConfigError(
                f"--allowed-host must be a host name like snapshots.example.com (no scheme, port or path), got {word!r}"
            )
        hosts.append(host.strip("[]"))
    return tuple(dict.fromkeys(hosts))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_port(text: str, name: str = "--port") -> int:
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {text!r}") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{name} must be between 1 and 65535, got {port}")
    return port


def parse_command(text: str) -> tuple[str, ...]:
    """Split like a POSIX shell would; the result is executed without a shell."""
    try:
        argv = tuple(shlex.split(text))
    except ValueError as exc:
        raise ConfigError(f"--command cannot be split into words: {exc}") from None
    if not argv:
        raise ConfigError("--command is empty")
    return argv


def check_command(argv: tuple[str, ...]) -> None:
    program = argv[0]
    if os.sep in program:
        if not os.path.isfile(program):
            raise ConfigError(f"--command: {program} not found")
        if not os.access(program, os.X_OK):
            raise ConfigError(f"--command: {program} is not executable")
    elif shutil.which(program) is None:
        raise ConfigError(f"--command: {program!r} not found on PATH")


def check_writable_dir(path: Path, flag: str, *, owner_only: bool = False) -> None:
    """Create the folder if needed (``owner_only``: 0700, whatever the umask) and prove we can write there (a
    temp file, then gone)."""
    try:
        if owner_only:
            make_data_folder(path)
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-", suffix=".tmp"):
            pass
    except OSError as exc:
        raise ConfigError(f"{flag} {path} is not a writable folder: {exc.strerror or exc}") from None


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket now, so "port in use" is reported before anything runs."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} cannot be resolved: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def validate(settings: Settings) -> None:
    """Everything that can be checked without starting: the command, the folders."""
    if settings.token_for_reads and not settings.token:
        raise ConfigError("--token-for-reads needs a --token (or SNAPSHOT_TOKEN)")
    check_command(settings.command)
    # Owner-only, unless the triggers folder (which others write into) is inside it.
    shared = settings.triggers_dir.resolve().is_relative_to(settings.data_dir.resolve())
    check_writable_dir(settings.data_dir, "--data-dir", owner_only=not shared)
    check_writable_dir(settings.triggers_dir, "--triggers-dir")
    with contextlib.suppress(OSError):
        if settings.progress_path.is_dir():
            raise ConfigError(f"--data-dir: {settings.progress_path} is a folder, not a file")
    check_notifications(settings)


# ---------------------------------------------------------------- notifications and checks (issue 4: notify)
NOTIFY_URL = re.compile(r"^https?://[^/\s?#]+(?:[/?#]\S*)?$", re.IGNORECASE)


def parse_notify_urls(text: str) -> tuple[str, ...]:
    """``--notify-url`` values (the flags joined by commas, or ``SNAPSHOT_NOTIFY_URLS``): http(s) URLs only."""
    urls: list[str] = []
    for word in (w.strip() for w in text.split(",")):
        if not word:
            continue
        shown = word.split("://", 1)[0] + "://…" if "://" in word else word[:40]  # never a password
        if not NOTIFY_URL.match(word):
            raise ConfigError(f"--notify-url must be an http:// or https:// URL with a host, got {shown!r}")
        try:
            parts = urlsplit(word)
            if parts.port == 0:  # a bad port or IPv6 host would fail later, at every delivery
                raise ValueError("Port out of range 1-65535")
        except ValueError as exc:
            raise ConfigError(f"--notify-url {word.split('://', 1)[0]}://…: {exc}") from None
        if not parts.hostname:  # "http://user:pw@" or "http://:80": every delivery would fail
            raise ConfigError(f"--notify-url must be an http:// or https:// URL with a host, got {shown!r}")
        urls.append(word)
    return tuple(dict.fromkeys(urls))


def parse_notify_on(text: str) -> tuple[str, ...]:
    events = tuple(dict.fromkeys(w.strip().lower() for w in re.split(r"[,\s]+", text) if w.strip()))
    unknown = [e for e in events if e not in NOTIFY_EVENTS]
    if unknown or not events:
        raise ConfigError(f"--notify-on takes a comma list of {', '.join(NOTIFY_EVENTS)}, got {text!r}")
    return events


def parse_factor(text: str, name: str, *, above_one: bool) -> float:
    """A ``--long-factor`` (0 or more than 1) or ``--fast-factor`` (0 up to, not including, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {text!r}") from None
    ok = (above_one and value > 1) or (not above_one and 0 < value < 1)
    if not math.isfinite(value) or (value != 0 and not ok):
        bound = "more than 1" if above_one else "between 0 and 1"
        raise ConfigError(f"{name} must be 0 (off) or {bound}, got {text!r}")
    return value


def parse_security(text: str) -> Security:
    try:
        return Security(text.strip().lower())
    except ValueError:
        raise ConfigError(f"--smtp-security must be none, starttls or ssl, got {text!r}") from None


EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+$")


def parse_addresses(text: str, name: str) -> tuple[str, ...]:
    """Plain addresses (``ops@example.com``), comma-separated; a display name is not taken."""
    found = tuple(dict.fromkeys(w.strip() for w in text.split(",") if w.strip()))
    for address in found:
        if not EMAIL.match(address):
            raise ConfigError(f"{name} must be an email address like ops@example.com, got {address!r}")
    return found


def check_notifications(settings: Settings) -> None:
    """SMTP settings that cannot work together."""
    if settings.smtp_host and not settings.smtp_to:
        raise ConfigError("--smtp-host needs at least one --smtp-to (or SNAPSHOT_SMTP_TO) to send to")
    if settings.smtp_to and not settings.smtp_host:
        raise ConfigError("--smtp-to needs an --smtp-host (or SNAPSHOT_SMTP_HOST) to send through")
    if settings.smtp_host is None and (settings.smtp_user or settings.smtp_password or settings.smtp_from):
        raise ConfigError("--smtp-user, --smtp-password and --smtp-from need an --smtp-host")
    if settings.smtp_user and not settings.smtp_password:
        raise ConfigError("--smtp-user needs a password: set SNAPSHOT_SMTP_PASSWORD")
    if settings.smtp_password and not settings.smtp_user:
        raise ConfigError("an SMTP password needs --smtp-user (or SNAPSHOT_SMTP_USER)")
    if not (settings.smtp_user or "").isascii() or not (settings.smtp_password or "").isascii():
        # smtplib encodes the login as ASCII: it would fail at the first mail, not here.
        raise ConfigError("--smtp-user and the SMTP password must be ASCII (Python's smtplib cannot send others)")
    if settings.public_url is not None and not (
        NOTIFY_URL.match(settings.public_url) and _has_host(settings.public_url)
    ):
        shown = settings.public_url.split("://", 1)[0] + "://…" if "@" in settings.public_url else settings.public_url
        raise ConfigError(f"--public-url must be an http:// or https:// URL, got {shown!r}")


def _has_host(url: str) -> bool:
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:
        return False
