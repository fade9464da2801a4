"""A tiny helper for Python jobs. Standard library only, so a job may also copy this file instead.

    from orchestrator.jobkit import report_progress
    report_progress(45, "Fetching GitHub PRs... (5/15 repos)")

It writes ``$SNAPSHOT_PROGRESS_FILE`` atomically (temp file + rename: a reader never sees half a document),
keeping the ``startedAt``/``runId`` the service wrote. Outside the service (no such variable) it prints the
equivalent ``PROGRESS`` line instead, so the job still works when run by hand.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any


def report_progress(percent: float, step: str) -> None:
    """Report ``percent`` (0-100) done and what the job is doing now."""
    percent = min(100.0, max(0.0, float(percent)))
    target = os.environ.get("SNAPSHOT_PROGRESS_FILE")
    if not target:
        print(f"PROGRESS {percent:g} {step}", flush=True)
        return
    path = Path(target)
    run_id = os.environ.get("SNAPSHOT_RUN_ID")
    document: dict[str, Any] = {
        "status": "running",
        "step": step,
        "progress": int(percent) if percent.is_integer() else round(percent, 2),
        "runId": run_id,
    }
    previous = _read_previous(path)
    # Keep what the service wrote for this run (when it started, what triggered it), nothing of older runs.
    if isinstance(previous, dict) and previous.get("runId") == run_id:
        document.update({k: previous[k] for k in ("startedAt", "trigger") if k in previous})
    # The temp file goes in the ``.tmp`` sub-folder, as the service's own writes do: a rename from there is
    # one inotify event, seen at once (a rename inside the watched folder is now and then held 0.5 s).
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        temp = _temp_folder(folder)
        try:
            fd, name = _create_temp(temp, path.name)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(document, out)
                os.replace(name, path.name, src_dir_fd=temp, dst_dir_fd=folder)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=temp)
                raise
        finally:
            os.close(temp)
    finally:
        os.close(folder)


def _temp_folder(folder: int) -> int:
    """``.tmp`` in ``folder``, opened without following a symlink; else (a symlink or a file is there, or it
    cannot be made) ``folder`` itself. A symlink there is left for the service, which owns the folder."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(".tmp", flags, dir_fd=folder)
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            os.mkdir(".tmp", 0o700, dir_fd=folder)
    except OSError:
        return os.dup(folder)
    try:
        return os.open(".tmp", flags, dir_fd=folder)
    except OSError:
        return os.dup(folder)


def _create_temp(folder: int, final_name: str) -> tuple[int, str]:
    """A new owner-only ``.<final_name>.<random>.tmp``: never an existing name, never through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        name = f".{final_name}.{os.urandom(6).hex()}.tmp"
        try:
            return os.open(name, flags, 0o600, dir_fd=folder), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name", final_name)


def _read_previous(path: Path) -> Any:
    """The progress file as it is, or ``None``. Never blocks (a FIFO there), never reads more than 1 MiB, never
    fails on a lie (deep nesting, huge numbers): reporting progress must not be what breaks the job."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)  # a symlink: ELOOP
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return json.loads(os.read(fd, 1 << 20))
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        os.close(fd)


if __name__ == "__main__":  # python -m orchestrator.jobkit 45 "step text"
    report_progress(float(sys.argv[1]), " ".join(sys.argv[2:]))
