"""Settings: one frozen dataclass, built from flags and environment by the CLI and validated once."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shlex
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from orchestrator.progress import PROGRESS_FILE_NAME
from orchestrator.state import STATE_FILE_NAME

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8001
DEFAULT_INTERVAL_MINUTES = 30.0
DEFAULT_COOLDOWN_MINUTES = 5.0


class ConfigError(ValueError):
    """A setting that cannot work; the message is one line meant for the user."""


def sample_job_command() -> tuple[str, ...]:
    """The bundled sample job, run by the same interpreter as the service."""
    return (sys.executable, "-m", "orchestrator.sample_job")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    interval_minutes: float = DEFAULT_INTERVAL_MINUTES
    cooldown_minutes: float = DEFAULT_COOLDOWN_MINUTES
    command: tuple[str, ...] = field(default_factory=sample_job_command)
    data_dir: Path = Path("data")
    triggers_dir: Path = Path("triggers")
    kill_grace_seconds: float = 10.0
    sse_ping_seconds: float = 15.0

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
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number of minutes, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ConfigError(f"{name} must be {bound} minutes, got {text!r}")
    return value


def parse_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"--port must be a whole number, got {text!r}") from None
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {port}")
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


def check_writable_dir(path: Path, flag: str) -> None:
    """Create the folder if needed and prove we can write there (a temp file, then gone)."""
    try:
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
    check_command(settings.command)
    check_writable_dir(settings.data_dir, "--data-dir")
    check_writable_dir(settings.triggers_dir, "--triggers-dir")
    with contextlib.suppress(OSError):
        if settings.progress_path.is_dir():
            raise ConfigError(f"--data-dir: {settings.progress_path} is a folder, not a file")
