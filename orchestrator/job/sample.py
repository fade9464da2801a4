"""The bundled sample snapshot job: fifteen steps over ~20 seconds, reported as ``PROGRESS`` lines.

It stands in for a real snapshot so that a new user sees the whole flow at once. Its duration is
``--duration SECONDS`` or ``$SNAPSHOT_SAMPLE_DURATION`` (default 20); ``--fail`` makes it end with an error
after the first few steps, to see what a failure looks like.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from types import FrameType

REPOS = 15


def steps() -> list[str]:
    names = [f"Fetching GitHub PRs... ({i}/{REPOS} repos)" for i in range(1, REPOS - 2)]
    return ["Connecting to GitHub...", *names, "Computing review statistics...", "Writing snapshot..."]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.sample_job")
    parser.add_argument(
        "--duration",
        type=float,
        default=float(os.environ.get("SNAPSHOT_SAMPLE_DURATION", "20")),
        help="seconds the whole job takes (default 20, or $SNAPSHOT_SAMPLE_DURATION)",
    )
    parser.add_argument("--fail", action="store_true", help="fail part-way through")
    args = parser.parse_args(argv)

    def stop(signum: int, frame: FrameType | None) -> None:
        print(f"sample job: stopping on {signal.Signals(signum).name}", file=sys.stderr, flush=True)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    plan = steps()
    pause = max(0.0, args.duration) / len(plan)
    print(f"sample job: run {os.environ.get('SNAPSHOT_RUN_ID', '-')} ({os.environ.get('SNAPSHOT_TRIGGER', 'manual')})")
    for index, step in enumerate(plan):
        print(f"PROGRESS {round(100 * index / len(plan))} {step}", flush=True)
        if args.fail and index == 3:
            print("sample job: GitHub answered 502 Bad Gateway", file=sys.stderr, flush=True)
            return 1
        time.sleep(pause)
    print("PROGRESS 100 Snapshot written", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
