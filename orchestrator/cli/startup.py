"""What is checked on this machine before the service starts: the job's program, the folders, the data folder's
lock and the listening socket. Each failure is one :class:`~orchestrator.config.ConfigError` line (exit 2),
said before anything runs."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import tempfile
from pathlib import Path

from orchestrator.config import ConfigError, Settings
from orchestrator.core.events import iso, utcnow
from orchestrator.disk.datadir import make_data_folder
from orchestrator.jobsfile.model import JobConfig, JobsFile, JobsFileError
from orchestrator.store.lock import AlreadyLocked, InstanceLock


def check_at_start(settings: Settings, *, jobs_file: bool = False) -> None:
    """Everything that can be checked without starting: the command (a jobs file's are checked as it is read),
    the folders."""
    if not jobs_file:
        check_command(settings.job.command)
    data_dir, triggers_dir = settings.store.data_dir, settings.job.triggers_dir
    # Owner-only, unless the triggers folder (which others write into) is inside it.
    shared = triggers_dir.resolve().is_relative_to(data_dir.resolve())
    check_writable_dir(data_dir, "--data-dir", owner_only=not shared)
    check_writable_dir(triggers_dir, "--triggers-dir")
    with contextlib.suppress(OSError):
        if settings.store.progress_path.is_dir():
            raise ConfigError(f"--data-dir: {settings.store.progress_path} is a folder, not a file")


def check_command(argv: tuple[str, ...]) -> None:
    if (why := command_problem(argv)) is not None:
        raise ConfigError(f"--command: {why}")


def read_jobs_file(path: Path) -> JobsFile:
    """The jobs file, read and checked whole, each job's program and folder too; :class:`JobsFileError` (one
    line) if anything in it cannot work."""
    from orchestrator.jobsfile.parse import load_jobs_file  # only a service with a jobs file reads one

    jobs = load_jobs_file(path)
    for job in jobs.jobs:
        check_job(job, path)
    return jobs


def check_job(job: JobConfig, jobs_file: Path) -> None:
    """A job of the jobs file that cannot start on this machine: its folder missing, its program not found (on
    its own ``PATH`` if its ``env`` sets one, a relative path from its folder, as the job will be started)."""
    where = f"jobs.{job.name}"
    if job.cwd is not None and not job.cwd.is_dir():
        raise JobsFileError(jobs_file, f"{where}.cwd", f"{job.cwd} is not a folder")
    if (why := command_problem(job.command, cwd=job.cwd, search=job.env.get("PATH"))) is not None:
        raise JobsFileError(jobs_file, f"{where}.command", why)


def command_problem(argv: tuple[str, ...], *, cwd: Path | None = None, search: str | None = None) -> str | None:
    """Why ``argv`` cannot be started (``'x' not found on PATH``), or ``None``."""
    program = argv[0]
    if os.sep in program:
        found = os.path.join(cwd, program) if cwd is not None else program
        if not os.path.isfile(found):
            return f"{program} not found"
        if not os.access(found, os.X_OK):
            return f"{program} is not executable"
    elif shutil.which(program, path=search) is None:
        return f"{program!r} not found on PATH"
    return None


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


def lock_data_folder(data_dir: Path, url: str) -> InstanceLock:
    """The data folder's lock, taken: one service per data folder."""
    lock = InstanceLock(data_dir)
    try:
        lock.acquire({"pid": os.getpid(), "url": url, "startedAt": iso(utcnow())})
    except AlreadyLocked as exc:
        raise ConfigError(
            f"data folder {data_dir} is in use by {exc.holder}; stop that one first, or give this one another "
            "--data-dir"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot lock {lock.path}: {exc.strerror or exc}") from None
    return lock


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket now, so "port in use" is reported before anything runs."""
    # An ASCII name goes as bytes: as text, Python encodes it with the "idna" codec, whose import (and its
    # Unicode tables') would be the only use of it in the service.
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
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
