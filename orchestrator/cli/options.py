"""The one table of options: each setting's flag, environment variable, parser, help and the :class:`Settings`
field it fills, declared once. The argparse parser (orchestrator/cli/parser.py) and :func:`settings_from` are
both built from it. A flag wins over its variable, which wins over the default: the default of the field in
:class:`Settings` (orchestrator/config.py), or the option's own for what is no setting (``--url``, ``--log-level``)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from orchestrator.cli import values as v
from orchestrator.config import DEFAULT_HOST, DEFAULT_PORT, ConfigError, Settings, validate

SERVE = ("serve", "check")
"""The commands that read the service's settings: ``serve``, and ``check``, which checks them as it would."""
CLIENTS = ("trigger", "status", "cancel", "pause", "resume", "runs", "reload")
FOLDER_USERS = (*SERVE, "trigger", "status")
NOTIFY_GROUP = "notifications and missed-run checks (README: Notifications)"
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
DEFAULTS = Settings()


def text(raw: str) -> str:
    return raw


@dataclass(frozen=True, slots=True)
class Option:
    flag: str
    env: str
    help: str
    """Its help, with ``{env}`` and ``{default}`` filled in."""
    field: str | None = None
    """The :class:`Settings` field it fills (``section.name``); ``None``: read by a command itself."""
    parse: Callable[[str], Any] = text
    default: Any = None
    """Only for an option that fills no field (the others take their field's default)."""
    commands: tuple[str, ...] = SERVE
    help_for: tuple[tuple[str, str], ...] = ()
    """Other help for some commands: (command, help)."""
    repeat: bool = False
    """Repeatable; the values are joined by commas, as the variable holds them."""
    switch: bool = False
    """A flag without a value, the same as the variable set to ``true``."""
    blank_is_unset: bool = False
    """An empty value is the default (a text, where nothing else would be checked)."""
    folder: bool = False
    """A path, made absolute with symlinks resolved: inotify does not follow a symlink it is asked to watch
    (watchdog adds ``IN_DONT_FOLLOW``), so a watch on a linked folder would hear nothing of what happens in it."""
    group: str | None = None
    """The serve help's section for it; ``None``: the options of the command."""
    flag_warning: str | None = None
    """Said on stderr when the flag (not the variable) is given."""
    metavar: str | None = None
    """What the help calls its value; ``None``: argparse's name, from the flag."""
    job_key: str | None = None
    """The jobs file's key that says this for each job: with a jobs file, the flag and its variable are refused,
    so that each setting is said in one place."""

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def default_value(self) -> Any:
        if self.field is None:
            return self.default
        value: Any = DEFAULTS
        for name in self.field.split("."):
            value = getattr(value, name)
        return value

    def help_text(self, command: str) -> str:
        template = dict(self.help_for).get(command, self.help)
        default = self.default_value
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        return template.format(env=self.env, default=shown)

    def raw(self, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> str | None:
        """What the flag, else the variable, says (a repeated flag's values joined by commas); ``None``: neither."""
        given = getattr(args, self.dest, None)
        if isinstance(given, list):
            given = ",".join(given)
        if given is None:
            given = (os.environ if environ is None else environ).get(self.env) or None
        return given

    def value(self, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Any:
        raw = self.raw(args, environ)
        value = self.default_value if raw is None or (raw == "" and self.blank_is_unset) else self.parse(raw)
        return Path(value).expanduser().resolve() if self.folder else value


def minutes(name: str, *, allow_zero: bool = True) -> Callable[[str], float]:
    return partial(v.parse_minutes, name=name, allow_zero=allow_zero)


def count(name: str) -> Callable[[str], int]:
    return partial(v.parse_count, name=name)


def optional_text(raw: str) -> str | None:
    return raw or None


Opt = Option
# Help shows the options of a command in this order.
# fmt: off
OPTIONS: tuple[Option, ...] = (
    Opt("--host", "SNAPSHOT_HOST", "address to listen on ({env}, default {default})", "http.host", blank_is_unset=True),
    Opt("--port", "SNAPSHOT_PORT", "port to listen on ({env}, default {default})", "http.port", v.parse_port),
    Opt("--interval", "SNAPSHOT_INTERVAL",
        "minutes between automatic runs, fractions allowed ({env}, default {default})",
        "job.interval_minutes", minutes("--interval", allow_zero=False), job_key="interval"),
    Opt("--cooldown", "SNAPSHOT_COOLDOWN",
        "minutes after a manual run before the next automatic one ({env}, default {default})",
        "job.cooldown_minutes", minutes("--cooldown"), job_key="cooldown"),
    Opt("--command", "SNAPSHOT_COMMAND",
        "the job's command line, split like a shell, run without one ({env}; default: the bundled sample job)",
        "job.command", v.parse_command, job_key="command"),
    Opt("--jobs", "SNAPSHOT_JOBS",
        "a TOML file of named jobs, each with its own command, schedule and limits ({env}; README: Several jobs)",
        parse=Path, commands=(*SERVE, "trigger"), blank_is_unset=True, metavar="FILE",
        help_for=(("trigger", "the service's jobs file: which job is the default, for --job ({env})"),)),
    Opt("--log-level", "SNAPSHOT_LOG_LEVEL", "debug, info, warning or error ({env}, default {default})",
        default="info", blank_is_unset=True),
    Opt("--timeout", "SNAPSHOT_TIMEOUT",
        "minutes a run may take before it is stopped and recorded as an error ({env}, default {default} = no limit)",
        "job.timeout_minutes", minutes("--timeout"), job_key="timeout"),
    Opt("--stall-timeout", "SNAPSHOT_STALL_TIMEOUT",
        "minutes a run may go without a progress change before it is stopped ({env}, default {default} = never)",
        "job.stall_timeout_minutes", minutes("--stall-timeout"), job_key="stall-timeout"),
    Opt("--kill-grace", "SNAPSHOT_KILL_GRACE",
        "seconds between SIGTERM and SIGKILL when a job is stopped ({env}, default {default})",
        "job.kill_grace_seconds", partial(v.parse_seconds, name="--kill-grace"), job_key="kill-grace"),
    Opt("--url", "SNAPSHOT_URL", "server address ({env}, default {default})", default=DEFAULT_URL,
        commands=CLIENTS, help_for=(("trigger", "server address for --wait ({env}, default {default})"),),
        blank_is_unset=True),
    Opt("--token", "SNAPSHOT_TOKEN",
        "require 'Authorization: Bearer TOKEN' on requests that change state ({env}; prefer the variable, flags "
        "show in ps)", "http.token", v.parse_token, commands=(*SERVE, *CLIENTS),
        help_for=(*((c, "the server's token, if it has one ({env})") for c in CLIENTS if c not in ("status", "runs")),
                *((c, "the server's token, if reads need one ({env})") for c in ("status", "runs")))),
    Opt("--token-for-reads", "SNAPSHOT_TOKEN_FOR_READS",
        "require the token for reading the API and events too ({env}=true)",
        "http.token_for_reads", partial(v.parse_bool, name="--token-for-reads"), switch=True),
    Opt("--allow-origin", "SNAPSHOT_ALLOW_ORIGIN",
        "a web origin (https://host:port) whose pages may call the API; repeatable ({env}, comma-separated)",
        "http.allow_origins", lambda s: v.parse_origins([s]), repeat=True),
    Opt("--allowed-host", "SNAPSHOT_ALLOWED_HOSTS",
        "a host name clients may address this service by (the Host header), besides loopback names, IP addresses "
        "and --allow-origin hosts; with any, other names get 403 whatever --host is (DNS rebinding); repeatable "
        "({env}, comma-separated)", "http.allowed_hosts", v.parse_hosts, repeat=True),
    Opt("--frame-ancestor", "SNAPSHOT_FRAME_ANCESTORS",
        "a web origin (https://host:port) whose pages may show this page in a frame; none by default; repeatable "
        "({env}, comma-separated)", "http.frame_ancestors", lambda s: v.parse_origins([s], "--frame-ancestor"),
        repeat=True),
    Opt("--trigger-limit", "SNAPSHOT_TRIGGER_LIMIT",
        "HTTP triggers accepted per minute, then 429 ({env}, default {default}, 0 = no limit)",
        "http.trigger_limit", count("--trigger-limit")),
    Opt("--max-streams", "SNAPSHOT_MAX_STREAMS",
        "open event streams allowed, then 503; log streams: a quarter of that ({env}, default: three fifths of the "
        "connections the file descriptor limit allows once raised to the hard limit, 10500 under 20000)",
        "http.sse_max_clients", v.parse_max_streams, metavar="N"),
    Opt("--streams-per-client", "SNAPSHOT_STREAMS_PER_CLIENT",
        "event streams, and apart from them log streams, one client address may hold without the bearer token (as "
        "many again with the read cookie; 4 times that for one IPv6 /56), then 429 ({env}, default {default}, 0 = "
        "no cap)", "http.streams_per_client", count("--streams-per-client")),
    Opt("--connections-per-client", "SNAPSHOT_CONNECTIONS_PER_CLIENT",
        "connections one client address may hold open (a --trusted-proxy's are not capped by address), at most half "
        "of all the service allows; more are closed at once ({env}, default {default}, 0 = no cap)",
        "http.connections_per_client", count("--connections-per-client")),
    Opt("--trusted-proxy", "SNAPSHOT_TRUSTED_PROXIES",
        "a reverse proxy's address or network (10.0.0.5, 10.0.0.0/24): only from these is the client taken from "
        "X-Forwarded-For; repeatable ({env}, comma-separated)",
        "http.trusted_proxies", v.parse_trusted_proxies, repeat=True),
    Opt("--keep-runs", "SNAPSHOT_KEEP_RUNS",
        "runs kept in the history for each job, with their logs ({env}, default {default}, 1 to 1000000)",
        "store.keep_runs", v.parse_keep_runs),
    Opt("--keep-days", "SNAPSHOT_KEEP_DAYS",
        "also remove runs older than this many days ({env}, default {default} = no age limit)",
        "store.keep_days", v.parse_keep_days),
    Opt("--public-url", "SNAPSHOT_PUBLIC_URL", "where people reach this service, for links in notifications ({env})",
        "notify.public_url", optional_text, group=NOTIFY_GROUP),
    Opt("--notify-url", "SNAPSHOT_NOTIFY_URLS",
        "POST each run's news to this http(s) URL; repeatable ({env}, comma-separated)",
        "notify.webhooks.urls", v.parse_notify_urls, repeat=True, group=NOTIFY_GROUP, job_key="notify-url"),
    Opt("--notify-on", "SNAPSHOT_NOTIFY_ON", "events sent to webhooks: start,success,failure,long ({env}, default all)",
        "notify.webhooks.events", v.parse_notify_on, group=NOTIFY_GROUP, job_key="notify-on"),
    Opt("--notify-secret", "SNAPSHOT_NOTIFY_SECRET",
        "sign webhook bodies with HMAC-SHA256 ({env}; prefer the variable)",
        "notify.webhooks.secret", optional_text, group=NOTIFY_GROUP),
    Opt("--notify-backoff", "SNAPSHOT_NOTIFY_BACKOFF",
        "seconds before the first retry of a failed delivery, doubling, 5 tries ({env}, default {default})",
        "notify.backoff_seconds", lambda s: max(0.01, v.parse_seconds(s, "--notify-backoff")), group=NOTIFY_GROUP),
    Opt("--smtp-host", "SNAPSHOT_SMTP_HOST", "mail failures through this SMTP server ({env})",
        "notify.mail.host", optional_text, group=NOTIFY_GROUP),
    Opt("--smtp-port", "SNAPSHOT_SMTP_PORT", "its port ({env}, default 587 starttls, 465 ssl, 25 none)",
        "notify.mail.port", partial(v.parse_port, name="--smtp-port"), group=NOTIFY_GROUP),
    Opt("--smtp-security", "SNAPSHOT_SMTP_SECURITY", "none, starttls or ssl ({env}, default {default})",
        "notify.mail.security", v.parse_security, group=NOTIFY_GROUP),
    Opt("--smtp-user", "SNAPSHOT_SMTP_USER", "SMTP login ({env})", "notify.mail.user", optional_text,
        group=NOTIFY_GROUP),
    Opt("--smtp-password", "SNAPSHOT_SMTP_PASSWORD", "SMTP password (prefer {env}: flags show in ps)",
        "notify.mail.password", optional_text, group=NOTIFY_GROUP,
        flag_warning="--smtp-password shows in ps and shell history; prefer SNAPSHOT_SMTP_PASSWORD"),
    Opt("--smtp-from", "SNAPSHOT_SMTP_FROM", "sender address ({env}, default snapshot-orchestrator@<hostname>)",
        "notify.mail.sender", lambda s: v.parse_addresses(s, "--smtp-from")[0], group=NOTIFY_GROUP),
    Opt("--smtp-to", "SNAPSHOT_SMTP_TO", "recipient; repeatable ({env}, comma-separated)",
        "notify.mail.recipients", partial(v.parse_addresses, name="--smtp-to"), repeat=True, group=NOTIFY_GROUP),
    Opt("--late-grace", "SNAPSHOT_LATE_GRACE",
        "minutes after its due time before a scheduled run is 'late' ({env}, default {default}, 0 = off)",
        "notify.checks.late_grace_minutes", minutes("--late-grace"), group=NOTIFY_GROUP),
    Opt("--long-factor", "SNAPSHOT_LONG_FACTOR",
        "a run longer than this x the median of recent completed runs is 'long' ({env}, default {default}, 0 = off)",
        "notify.checks.long_factor", partial(v.parse_factor, name="--long-factor", above_one=True), group=NOTIFY_GROUP),
    Opt("--fast-factor", "SNAPSHOT_FAST_FACTOR",
        "a completed run shorter than this x that median is 'fast' ({env}, default {default}, 0 = off)",
        "notify.checks.fast_factor", partial(v.parse_factor, name="--fast-factor", above_one=False),
        group=NOTIFY_GROUP),
    Opt("--data-dir", "SNAPSHOT_DATA_DIR", "state and progress file folder ({env}, default ./{default})",
        "store.data_dir", Path, commands=FOLDER_USERS, blank_is_unset=True, folder=True),
    Opt("--triggers-dir", "SNAPSHOT_TRIGGERS_DIR", "trigger folder ({env}, default ./{default})",
        "job.triggers_dir", Path, commands=FOLDER_USERS, blank_is_unset=True, folder=True),
)
# fmt: on
BY_FLAG = {option.flag: option for option in OPTIONS}
ENV_NAMES = frozenset(option.env for option in OPTIONS)


def option(flag: str) -> Option:
    return BY_FLAG[flag]


def settings_from(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """The :class:`Settings` that flags, variables and defaults make, validated; a
    :class:`~orchestrator.config.ConfigError` for the first value that cannot be read or cannot work. A group's
    warnings are said before its values are read."""
    settings = Settings()
    for _group, options in _grouped(o for o in OPTIONS if o.field is not None and "serve" in o.commands):
        for each in options:
            if each.flag_warning and getattr(args, each.dest, None) is not None:
                print(f"snapshot-orchestrator: warning: {each.flag_warning}", file=sys.stderr)
        for each in options:
            assert each.field is not None
            settings = _with(settings, each.field.split("."), each.value(args, environ))
    validate(settings)
    return settings


def refuse_job_options(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> None:
    """With a jobs file (``--jobs``, ``SNAPSHOT_JOBS``) each job says its command, schedule and limits there: a
    :class:`~orchestrator.config.ConfigError` for a per-job flag or variable given too."""
    jobs = option("--jobs")
    if not jobs.raw(args, environ):  # an empty --jobs is none, as its value says
        return
    given = jobs.flag if getattr(args, jobs.dest, None) else jobs.env
    for each in OPTIONS:
        if each.job_key is None:
            continue
        name = each.flag if getattr(args, each.dest, None) is not None else each.env
        if each.raw(args, environ) is not None:
            raise ConfigError(
                f"{name} cannot be used with {given}: set {each.job_key} in the jobs file, in a job's table or in "
                "[defaults]"
            )


def _grouped(options: Iterator[Option]) -> Iterator[tuple[str | None, list[Option]]]:
    groups: dict[str | None, list[Option]] = {}
    for each in options:
        groups.setdefault(each.group, []).append(each)
    yield from groups.items()


def _with(section: Any, path: list[str], value: Any) -> Any:
    """``section`` with the field at ``path`` replaced (the sections are frozen: each one on the way is new)."""
    name, *rest = path
    return dataclasses.replace(section, **{name: _with(getattr(section, name), rest, value) if rest else value})
