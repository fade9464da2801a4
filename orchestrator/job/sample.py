"""The bundled sample snapshot job: four steps over ~20 seconds, reported as ``PROGRESS`` lines with details.

It stands in for a real snapshot so that a new user sees the whole flow at once: connecting, fetching the pull
requests of fifteen repositories (most of the time, a detail and a count per repository), computing statistics,
writing the snapshot. Its duration is ``--duration SECONDS`` or ``$SNAPSHOT_SAMPLE_DURATION`` (default 20);
``--fail`` makes it end with an error while it fetches, to see what a failure looks like.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

from orchestrator.job.jobkit import Reporter

REPOS = (
    "octo/api",
    "octo/web",
    "octo/docs",
    "octo/cli",
    "octo/sdk-python",
    "octo/sdk-js",
    "octo/infra",
    "octo/mobile",
    "octo/payments",
    "octo/search",
    "octo/auth",
    "octo/billing",
    "octo/analytics",
    "octo/notifications",
    "octo/status-page",
)
FAILING_REPO = 3
"""With ``--fail``, GitHub refuses the third repository."""


class GitHubError(RuntimeError):
    def __init__(self, repo: str) -> None:
        super().__init__(f"GitHub answered 502 Bad Gateway for {repo}")


def snapshot(reporter: Reporter, duration: float, fail: bool, sleep: Callable[[float], None] = time.sleep) -> None:
    """The job's steps, uneven as a real snapshot's: fetching takes 70 % of the time."""
    with reporter.step("Connecting to GitHub", 0, end=5):
        sleep(0.05 * duration)
    with reporter.step("Fetching GitHub PRs", 5, end=85, total=len(REPOS)) as fetching:
        for number, repo in enumerate(REPOS, 1):
            fetching.detail(f"repo {number}/{len(REPOS)}: {repo}")
            if fail and number == FAILING_REPO:
                raise GitHubError(repo)
            sleep(0.7 * duration / len(REPOS))
            fetching.advance()
    with reporter.step("Computing review statistics", 85, end=95):
        sleep(0.15 * duration)
    with reporter.step("Writing snapshot", 95, end=100):
        sleep(0.1 * duration)


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
    print(f"sample job: run {os.environ.get('SNAPSHOT_RUN_ID', '-')} ({os.environ.get('SNAPSHOT_TRIGGER', 'manual')})")
    # Lines on stdout even under the service: the sample shows the line protocol, which any language can speak.
    reporter = Reporter(lines=True)
    try:
        snapshot(reporter, max(0.0, args.duration), args.fail)
    except GitHubError as error:
        print(f"sample job: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        reporter.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
