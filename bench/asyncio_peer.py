"""The least the service's shape does between a touch and its job, as one small program: a reference for
``bench/peers.py``. An asyncio loop reads the folder's inotify descriptor itself, asking for the events the
service asks for (``orchestrator/sources/loopobserver.py``'s ``MASK``), and puts the name of each file written
and closed (or renamed in) on one ``asyncio.Queue``; one consumer reads the file, appends a line to JOURNAL and
``fdatasync``s it (the trigger is on disk), removes the file, and runs the job as ``asyncio.create_subprocess_exec``
does it for the service (its output on pipes, a session of its own), one run at a time. No history, no state
file, no progress file, no HTTP: what is left is the floor of the shape.

Unlike the service, no reader thread drains the descriptor while the loop is busy (the service's costs a touch
about 0.3 ms, measured against the loop reading it itself): the floor would lose events to a full kernel queue
in a burst, and then only looks at the folder again.

    python bench/asyncio_peer.py FOLDER JOURNAL JOB [ARG...]
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import struct
import sys

from watchdog.observers.inotify_c import InotifyConstants as In
from watchdog.observers.inotify_c import inotify_add_watch, inotify_init

from orchestrator.sources.loopobserver import MASK

EVENT = struct.Struct("iIII")


def inotify(folder: str) -> int:
    """An inotify instance watching ``folder`` for the service's events, opened as the service opens its own."""
    fd = inotify_init()
    if fd == -1 or inotify_add_watch(fd, os.fsencode(folder), MASK) == -1:
        raise OSError(ctypes.get_errno(), "inotify")
    os.set_inheritable(fd, False)
    os.set_blocking(fd, False)
    return fd


def names(buffer: bytes, folder: str) -> list[str]:
    """The files of ``buffer``'s events that are ready to be taken: written and closed, or renamed in; every
    file in the folder after an overflow."""
    found, at = [], 0
    while at < len(buffer):
        _wd, mask, _cookie, length = EVENT.unpack_from(buffer, at)
        at += EVENT.size
        name = os.fsdecode(buffer[at : at + length].rstrip(b"\0"))
        at += length
        if mask & In.IN_Q_OVERFLOW:
            found.extend(sorted(os.listdir(folder)))
        elif name and mask & (In.IN_CLOSE_WRITE | In.IN_MOVED_TO) and not mask & In.IN_ISDIR:
            found.append(name)
    return found


async def consume(queue: asyncio.Queue[str], folder: str, journal: int, job: list[str]) -> None:
    while True:
        name = await queue.get()
        path = os.path.join(folder, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:  # gone (taken already), or not a file to read
            continue
        try:
            reason = os.read(fd, 4096)
        finally:
            os.close(fd)
        os.write(journal, os.fsencode(name) + b" " + reason.replace(b"\n", b" ") + b"\n")
        os.fdatasync(journal)
        os.unlink(path)
        proc = await asyncio.create_subprocess_exec(
            *job,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        await proc.communicate()


async def main() -> int:
    folder, journal_path, *job = sys.argv[1:]
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()
    fd = inotify(folder)
    journal = os.open(journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def readable() -> None:
        try:
            buffer = os.read(fd, 65536)
        except BlockingIOError:
            return
        for name in names(buffer, folder):
            queue.put_nowait(name)

    loop.add_reader(fd, readable)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    consumer = asyncio.create_task(consume(queue, folder, journal, job))
    await stop.wait()
    consumer.cancel()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
