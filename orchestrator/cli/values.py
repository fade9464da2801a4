"""Text to setting values: each parser takes what a flag or a variable said and returns the value, or raises a
:class:`~orchestrator.config.ConfigError` whose one line names the flag and what it takes."""

from __future__ import annotations

import math
import re
import shlex

from orchestrator.config import (
    MAIL_SECURITIES,
    MAX_MINUTES,
    MAX_SECONDS,
    NOTIFY_EVENTS,
    ConfigError,
    MailSecurity,
    bad_notify_url,
)
from orchestrator.http.clientaddr import Network, parse_network
from orchestrator.http.hostheader import is_ip

MAX_KEEP_DAYS = 36_500
MAX_KEEP_RUNS = 1_000_000
"""More is a typo (and past 2**63 SQLite cannot take the number at all: retention failed at every run)."""
MAX_STREAMS = 1_000_000
"""More is a typo: no descriptor limit a kernel sets by default holds as many."""


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


def parse_max_streams(text: str) -> int:
    """``--max-streams``: a whole number of streams, from 1 to :data:`MAX_STREAMS` (unset: derived at start)."""
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"--max-streams must be a whole number of event streams, got {text!r}") from None
    if not 1 <= value <= MAX_STREAMS:
        raise ConfigError(
            f"--max-streams must be from 1 to {MAX_STREAMS} (unset: derived from the descriptor limit), got {text!r}"
        )
    return value


def parse_bool(text: str, name: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {text!r}")


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


def parse_notify_urls(text: str) -> tuple[str, ...]:
    """``--notify-url`` values (the flags joined by commas, or ``SNAPSHOT_NOTIFY_URLS``): http(s) URLs only."""
    urls: list[str] = []
    for word in (w.strip() for w in text.split(",")):
        if not word:
            continue
        if (why := bad_notify_url(word)) is not None:
            raise ConfigError(f"--notify-url {why}")
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


def parse_security(text: str) -> MailSecurity:
    wanted = text.strip().lower()
    for security in MAIL_SECURITIES:
        if security == wanted:
            return security
    raise ConfigError(f"--smtp-security must be none, starttls or ssl, got {text!r}")


EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+$")


def parse_addresses(text: str, name: str) -> tuple[str, ...]:
    """Plain addresses (``ops@example.com``), comma-separated; a display name is not taken."""
    found = tuple(dict.fromkeys(w.strip() for w in text.split(",") if w.strip()))
    for address in found:
        if not EMAIL.match(address):
            raise ConfigError(f"{name} must be an email address like ops@example.com, got {address!r}")
    return found
