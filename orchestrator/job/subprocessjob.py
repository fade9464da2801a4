"""The real job: a subprocess in its own session, its output handed to the run's log a block of whole lines at
a time (:mod:`orchestrator.job.linecut`) and its stdout's ``PROGRESS`` lines parsed, stopped (when cancelled,
or when it leaves processes behind) by :func:`escalate`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

from orchestrator.core.events import RunStatus
from orchestrator.core.outlast import outlast_cancel
from orchestrator.job.linecut import last_lines, lines_of, lines_with
from orchestrator.job.pipes import pipe_end, read_blocks
from orchestrator.job.processgroup import JobGroup, escalate
from orchestrator.job.protocol import (
    MARK,
    JobResult,
    Pipe,
    Report,
    RunContext,
    Started,
    ignore_pid,
    parse_progress_line,
)

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 10
DRAIN_AFTER_EXIT_SECONDS = 2.0
"""How long the pipes may stay open after the job's main process exits (a child still writing)."""


WITHHELD_FROM_JOB = frozenset(
    {
        "SNAPSHOT_TOKEN",
        "SNAPSHOT_TOKEN_FOR_READS",
        "SNAPSHOT_NOTIFY_SECRET",
        "SNAPSHOT_NOTIFY_URLS",  # a webhook URL is often its own secret (Slack, Teams, ...)
        "SNAPSHOT_SMTP_PASSWORD",
    }
)
"""The service's own secrets: a job that prints its environment, or crashes with a dump of it, would publish
them in its log, which anyone who may read the API reads."""


def job_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment a job inherits: the service's, without the service's own secrets."""
    return {name: value for name, value in env.items() if name not in WITHHELD_FROM_JOB}


class SubprocessJob:
    """The real job: ``argv`` run without a shell, in a new session so its whole tree can be stopped."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        kill_grace: float = 10.0,
        cwd: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = tuple(argv)
        # The job's own variables (a jobs file's ``env``) are the operator's to give, secrets included.
        self.env = {**job_environment(os.environ if env is None else env), **(extra_env or {})}
        self.kill_grace = kill_grace
        self.cwd = cwd
        """Where the job runs; ``None``: the service's own folder."""

    async def run(self, ctx: RunContext, report: Report, started: Started = ignore_pid) -> JobResult:
        env = {
            **self.env,
            "SNAPSHOT_PROGRESS_FILE": os.fspath(ctx.progress_file),
            "SNAPSHOT_RUN_ID": ctx.run_id,
            "SNAPSHOT_TRIGGER": ctx.source.value,
            "SNAPSHOT_REASON": ctx.reason,
            "SNAPSHOT_JOB": ctx.job,
            "PYTHONUNBUFFERED": "1",
        }
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _ExitAwareProtocol(loop),
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            log.error("run %s: cannot start %s: %s", ctx.run_id, self.argv[0], exc)
            # Said in the run's log too: otherwise the log of a job that never ran is empty.
            if (lagging := ctx.output(Pipe.ERR, f"{MARK} cannot start job {self.argv[0]}: {exc}")) is not None:
                await lagging
            return JobResult(RunStatus.ERROR, error=f"cannot start job: {exc}")
        proc = asyncio.subprocess.Process(transport, protocol, loop)
        log.info("%s: run %s: started pid %d (%s)", ctx.job, ctx.run_id, proc.pid, ctx.source.value)
        started(proc.pid)
        assert proc.stdout is not None and proc.stderr is not None
        tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        for fd in (1, 2):  # both pipes made big before anything is read
            pipe_end(transport, fd)
        readers = asyncio.gather(self._read_stdout(ctx, proc.stdout, report), self._read_stderr(ctx, proc.stderr, tail))
        group = JobGroup(ctx.run_id, proc.pid, protocol.exited)
        try:
            code = await self._outlive(group, readers)
        except asyncio.CancelledError:
            # To its end even if cancelled again (a second Ctrl-C): a cut-short escalation leaves the job running.
            await outlast_cancel(asyncio.ensure_future(escalate(group, self.kill_grace)))
            raise
        finally:
            await _settle(readers)
            transport.close()  # the pipes: held open by an escaped process, they would leak two fds a run
        if code == 0:
            return JobResult(RunStatus.COMPLETED, exit_code=0)
        return JobResult(RunStatus.ERROR, exit_code=code, error=describe_exit(code, tail))

    async def _outlive(self, group: JobGroup, readers: asyncio.Future[tuple[None, None]]) -> int:
        """Wait for the job to exit and its output to be read; stop what it left behind. Its exit code."""
        code = await asyncio.shield(group.exited)
        try:
            async with asyncio.timeout(DRAIN_AFTER_EXIT_SECONDS):
                await asyncio.shield(readers)
        except TimeoutError:
            if group.alive():
                log.warning("run %s: job exited but left processes holding its output; stopping them", group.run_id)
                await escalate(group, self.kill_grace)
            else:
                log.warning(
                    "run %s: job exited, but a process that left its session (setsid) holds its output; "
                    "that process is not stopped",
                    group.run_id,
                )
        if group.alive():
            # Children that outlive the job would run on beside the next run: one run at a time.
            log.warning("run %s: job exited but left processes behind; stopping them", group.run_id)
            await escalate(group, self.kill_grace)
        return code

    async def _read_stdout(self, ctx: RunContext, stream: asyncio.StreamReader, report: Report) -> None:
        def seen(block: bytes) -> None:
            # Only the lines that hold the word are looked at: most blocks hold no report at all.
            for line in lines_with(block, b"PROGRESS"):
                if (parsed := parse_progress_line(line)) is not None:
                    report(parsed)
            if log.isEnabledFor(logging.DEBUG):
                # At debug only: the run's own log has every line; a chatty job would flood the service log.
                for line in lines_of(block):
                    if line.strip():
                        log.debug("run %s | %s", ctx.run_id, line)

        await read_blocks(stream, Pipe.OUT, ctx.output, seen)

    async def _read_stderr(self, ctx: RunContext, stream: asyncio.StreamReader, tail: deque[str]) -> None:
        def seen(block: bytes) -> None:
            tail.extend(last_lines(block, STDERR_TAIL_LINES))
            if log.isEnabledFor(logging.DEBUG):
                for line in lines_of(block):
                    if line.strip():
                        log.debug("run %s ! %s", ctx.run_id, line)

        await read_blocks(stream, Pipe.ERR, ctx.output, seen)


class _ExitAwareProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Tells when the process itself exits. ``Process.wait()`` also waits for every pipe to close, which
    never happens while a child the job left behind holds stdout open."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self.exited: asyncio.Future[int] = loop.create_future()
        self._process: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if isinstance(transport, asyncio.SubprocessTransport):
            self._process = transport

    def process_exited(self) -> None:
        super().process_exited()
        code = self._process.get_returncode() if self._process is not None else None
        if not self.exited.done():
            self.exited.set_result(-1 if code is None else code)


def describe_exit(code: int, stderr_tail: Sequence[str]) -> str:
    if code < 0:
        try:
            what = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            what = f"killed by signal {-code}"
    else:
        what = f"exited with code {code}"
    if not stderr_tail:
        return what
    # The headline carries the job's last word, which usually says what went wrong; the lines before it
    # follow as context (a one-line stderr is said once).
    headline = f"{what}: {stderr_tail[-1].strip()}"
    return headline if len(stderr_tail) == 1 else headline + "\n" + "\n".join(stderr_tail)


async def _settle(readers: asyncio.Future[tuple[None, None]]) -> None:
    if not readers.done():
        readers.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await readers
