"""The least a watchdog-based trigger tool does that keeps "the trigger is on disk before its job runs": on a file
created in FOLDER, append one line to JOURNAL and ``fdatasync`` it, then run the job (no shell). A reference for
``bench/peers.py``: watchdog's observer and threads as ``watchmedo`` has them, plus the one synced write.

    python bench/durable_peer.py FOLDER JOURNAL JOB [ARG...]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from watchdog.events import FileCreatedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer


class Durable(FileSystemEventHandler):
    def __init__(self, journal: str, job: list[str]) -> None:
        self.journal = journal
        self.job = job

    def on_created(self, event: FileSystemEvent) -> None:
        if not isinstance(event, FileCreatedEvent):
            return
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, os.fsencode(event.src_path) + b"\n")
            os.fdatasync(fd)
        finally:
            os.close(fd)
        subprocess.Popen(self.job)  # reaped by SIGCHLD being ignored


def main() -> int:
    folder, journal, *job = sys.argv[1:]
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    observer = Observer()
    observer.schedule(Durable(journal, job), folder)
    observer.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    observer.stop()
    observer.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
