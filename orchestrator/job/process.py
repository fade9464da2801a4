"""Running the job: a subprocess in its own session, its stdout read for ``PROGRESS`` lines, stopped by
escalation (SIGTERM to the whole process group, a grace period, then SIGKILL)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol, TypeVar

from orchestrator.core.events import RunStatus, Source

log = logging.getLogger(__name__)

T = TypeVar("T")

PROGRESS_LINE = re.compile(r"^PROGRESS\s+(-?\d+(?:\.\d+)?)%?(?:\s+(.*))?$")
MAX_LINE_BYTES = 8192
CUT_MARK = f" [line cut at {MAX_LINE_BYTES} bytes]"
MARK = "[snapshot-orchestrator]"
"""Starts the lines the service itself writes into a run's log (not the job's own output)."""
STDERR_TAIL_LINES = 10
DRAIN_AFTER_EXIT_SECONDS = 2.0
"""How long the pipes may stay open after the job's main process exits (a child still writing)."""

Report = Callable[[float, str | None], None]
"""Called with (percent, step or None) for each progress line the job prints."""
Started = Callable[[int], None]
"""Called with the job's process group id once it runs, so that it can be recorded."""


class Pipe(StrEnum):
    """Which of the job's outputs a line came from (as written in the run's log)."""

    OUT = "out"
    ERR = "err"


Output = Callable[[Pipe, str], Awaitable[None] | None]
"""Called with (pipe, text) for every line the job prints, progress lines and blank lines included. An awaitable
back asks the reader to wait for it before it reads on (the log's disk lags: the job waits on its pipe)."""


def _ignore_pid(pid: int) -> None:
    pass


def ignore_output(pipe: Pipe, text: str) -> Awaitable[None] | None:
    return None


@dataclass(frozen=True, slots=True)
class RunContext:
    run_id: str
    source: Source
    reason: str
    progress_file: Path
    output: Output = field(default=ignore_output, compare=False, repr=False)
    """Where the job's lines go (the run's log); a job that prints nothing may ignore it."""


@dataclass(frozen=True, slots=True)
class JobResult:
    status: RunStatus
    exit_code: int | None = None
    error: str | None = None


class Job(Protocol):
    async def run(self, ctx: RunContext, report: Report, started: Started = _ignore_pid) -> JobResult:
        """Run once, handing each line the job prints to ``ctx.output``. Cancelling the call stops the job
        (its whole process tree) before the cancel goes on."""
        ...


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


def parse_progress_line(line: str) -> tuple[float, str | None] | None:
    """``PROGRESS 45 Fetching PRs (5/15)`` -> ``(45.0, "Fetching PRs (5/15)")``; other lines -> ``None``."""
    match = PROGRESS_LINE.match(line.strip())
    if match is None:
        return None
    step = match.group(2)
    return float(match.group(1)), (step.strip() if step else None)


class SubprocessJob:
    """The real job: ``argv`` run without a shell, in a new session so its whole tree can be stopped."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, kill_grace: float = 10.0) -> None:
        self.argv = tuple(argv)
        self.env = job_environment(os.environ if env is None else env)
        self.kill_grace = kill_grace

    async def run(self, ctx: RunContext, report: Report, started: Started = _ignore_pid) -> JobResult:
        env = {
            **self.env,
            "SNAPSHOT_PROGRESS_FILE": os.fspath(ctx.progress_file),
            "SNAPSHOT_RUN_ID": ctx.run_id,
            "SNAPSHOT_TRIGGER": ctx.source.value,
            "SNAPSHOT_REASON": ctx.reason,
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
                start_new_session=True,
            )
        except OSError as exc:
            log.error("run %s: cannot start %s: %s", ctx.run_id, self.argv[0], exc)
            # Said in the run's log too: otherwise the log of a job that never ran is empty.
            if (lagging := ctx.output(Pipe.ERR, f"{MARK} cannot start job {self.argv[0]}: {exc}")) is not None:
                await lagging
            return JobResult(RunStatus.ERROR, error=f"cannot start job: {exc}")
        proc = asyncio.subprocess.Process(transport, protocol, loop)
        log.info("run %s: started pid %d (%s)", ctx.run_id, proc.pid, ctx.source.value)
        started(proc.pid)
        assert proc.stdout is not None and proc.stderr is not None
        tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        readers = asyncio.gather(self._read_stdout(ctx, proc.stdout, report), self._read_stderr(ctx, proc.stderr, tail))
        try:
            code = await asyncio.shield(protocol.exited)
            try:
                async with asyncio.timeout(DRAIN_AFTER_EXIT_SECONDS):
                    await asyncio.shield(readers)
            except TimeoutError:
                if _group_alive(proc.pid):
                    log.warning("run %s: job exited but left processes holding its output; stopping them", ctx.run_id)
                    await self._stop_group(ctx, proc.pid, protocol.exited)
                else:
                    log.warning(
                        "run %s: job exited, but a process that left its session (setsid) holds its output; "
                        "that process is not stopped",
                        ctx.run_id,
                    )
            if _group_alive(proc.pid):
                # Children that outlive the job would run on beside the next run: one run at a time.
                log.warning("run %s: job exited but left processes behind; stopping them", ctx.run_id)
                await self._stop_group(ctx, proc.pid, protocol.exited)
        except asyncio.CancelledError:
            # To its end even if cancelled again (a second Ctrl-C): a cut-short escalation leaves the job running.
            await outlast_cancel(asyncio.ensure_future(self._stop_group(ctx, proc.pid, protocol.exited)))
            raise
        finally:
            await _settle(readers)
            transport.close()  # the pipes: held open by an escaped process, they would leak two fds a run
        if code == 0:
            return JobResult(RunStatus.COMPLETED, exit_code=0)
        return JobResult(RunStatus.ERROR, exit_code=code, error=describe_exit(code, tail))

    async def _stop_group(self, ctx: RunContext, pgid: int, exited: asyncio.Future[int]) -> None:
        """SIGTERM the job's process group, wait ``kill_grace``, then SIGKILL; each step logged.

        ``pgid`` is the job's pid: with ``start_new_session`` the job leads its own group."""
        if not _signal_group(pgid, signal.SIGTERM):
            return
        log.info("run %s: sent SIGTERM to process group %d", ctx.run_id, pgid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.kill_grace
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.kill_grace):
                await asyncio.shield(exited)
        # The leader may be gone while its children linger: the group is what must be empty.
        # The kernel tells no one when a process group empties, so this one wait has to look.
        while _group_alive(pgid) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if _group_alive(pgid):  # zombies waiting for a reaper count for killpg, not for us
            _signal_group(pgid, signal.SIGKILL)
            log.warning(
                "run %s: process group %d ignored SIGTERM for %gs; sent SIGKILL",
                ctx.run_id,
                pgid,
                self.kill_grace,
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.kill_grace):
                await asyncio.shield(exited)

    async def _read_stdout(self, ctx: RunContext, stream: asyncio.StreamReader, report: Report) -> None:
        async for line in iter_lines(stream):
            if (lagging := ctx.output(Pipe.OUT, line)) is not None:
                await lagging
            parsed = parse_progress_line(line)
            if parsed is not None:
                report(*parsed)
            elif line.strip():
                # At debug only: the run's own log has every line; a chatty job would flood the service log.
                log.debug("run %s | %s", ctx.run_id, line)

    async def _read_stderr(self, ctx: RunContext, stream: asyncio.StreamReader, tail: deque[str]) -> None:
        async for line in iter_lines(stream):
            if (lagging := ctx.output(Pipe.ERR, line)) is not None:
                await lagging
            if line.strip():
                tail.append(line)
                log.debug("run %s ! %s", ctx.run_id, line)


async def iter_lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    """Lines of a pipe, decoded leniently. An over-long line is cut: its first :data:`MAX_LINE_BYTES` and a
    marker, once; the rest up to the next newline is dropped (gigabytes without a newline are one log line)."""
    buffer = b""
    dropping = False
    while chunk := await stream.read(65536):
        if dropping:
            newline = chunk.find(b"\n")
            if newline < 0:
                continue
            chunk, dropping = chunk[newline + 1 :], False
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            yield _decode(raw)
        if len(buffer) > MAX_LINE_BYTES:
            yield _decode(buffer[:MAX_LINE_BYTES]) + CUT_MARK
            buffer, dropping = b"", True
    if buffer:
        yield _decode(buffer)


def _decode(raw: bytes) -> str:
    return raw[:MAX_LINE_BYTES].decode("utf-8", errors="replace").rstrip("\r")


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


async def stop_leftover(run_id: str, grace: float) -> bool:
    """Stop what is left of the job of a run that an earlier service died in (it was killed, not stopped).

    Its processes are found by ``SNAPSHOT_RUN_ID`` in their environment, which every process of the job's
    tree inherits: the run id is on disk before the job is spawned, its pid only after, so a crash in between
    leaves nothing else to go by. The sessions they lead are searched too (a child that cleared its
    environment but kept the job's session). A group id reused since by something else is left alone: only a
    process proven to be the run's counts. ``True`` if a leftover was found and stopped."""
    found = _processes_of_run(run_id)
    if not found:
        return False
    log.warning(
        "run %s: its job outlived the service (%d process%s: %s); stopping it",
        run_id,
        len(found),
        "" if len(found) == 1 else "es",
        " ".join(map(str, sorted(found)[:10])),
    )
    _signal_all(found, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    # Not our children, so no exit notification: look until none is left or the grace is over.
    while (found := _processes_of_run(run_id)) and loop.time() < deadline:
        _signal_all(found, signal.SIGTERM)  # a child forked meanwhile gets it too
        await asyncio.sleep(0.05)
    if found:
        log.warning("run %s: %d leftover process(es) ignored SIGTERM for %gs; sent SIGKILL", run_id, len(found), grace)
    said = False
    # Until none is left, however long: a process in uninterruptible I/O dies only once its I/O ends, and a
    # child forked since the last look has not been signalled yet. Nothing starts before.
    while found:
        _signal_all(found, signal.SIGKILL)
        if not said and loop.time() > deadline + LEFTOVER_PATIENCE_SECONDS:
            log.error("run %s: leftover process(es) %s still alive after SIGKILL; waiting", run_id, sorted(found))
            said = True
        await asyncio.sleep(0.05)
        found = _processes_of_run(run_id)
    return True


LEFTOVER_PATIENCE_SECONDS = 5.0
"""After SIGKILL, how long a leftover may take to die before the wait is logged."""


def _processes_of_run(run_id: str) -> set[int]:
    """Live processes with ``SNAPSHOT_RUN_ID=run_id`` in their environment, and the members of the sessions
    and groups they belong to. Never this service's own group or session."""
    marker = f"SNAPSHOT_RUN_ID={run_id}".encode()
    own = {os.getpid(), os.getpgrp(), os.getsid(0)}
    found: set[int] = set()
    leaders: set[int] = set()
    for pid, fields in _live_processes():
        if pid in own:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as env:  # only at start-up, after a crash
                ours = marker in env.read().split(b"\0")
        except OSError:
            continue  # gone, or not ours to read
        if ours:
            found.add(pid)
            leaders.update(int(f) for f in fields[2:4] if int(f) not in own and int(f) > 1)
    if not found:
        return found
    # Only sessions and groups that a process of the run leads or belongs to: the saved pid alone proves
    # nothing (it may be another session's leader by now).
    for leader in leaders:
        found.update(_group_members(leader))
    return found - own


def _live_processes() -> list[tuple[int, list[bytes]]]:
    """(pid, the fields of /proc/pid/stat after the command name) of every live (not zombie) process."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    found = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command name: state, ppid, pgrp, session, ...
        if len(fields) > 3 and fields[0] != b"Z":
            found.append((int(entry), fields))
    return found


def _signal_all(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Signal the job's tree: its process group, and members of its session in other groups."""
    signalled = False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
        signalled = True
    for pid in _group_members(pgid):
        if pid != pgid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)  # already signalled if still in the group: a second one is harmless
                signalled = True
    return signalled


def _group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process of the job's tree is left."""
    return bool(_group_members(pgid))


def _group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of the job's tree: its process group, and any process of its session
    that moved to a group of its own (``setpgid``). The leader may be gone while members live on. Only a
    process that started a new session (``setsid``) has left for good; nothing short of a cgroup finds it.

    ``killpg(pgid, 0)`` alone also counts zombies, which linger where no init reaps orphans (a container
    without ``--init``); on Linux /proc tells them apart."""
    if not os.path.isdir("/proc/self"):
        return [pgid] if _group_signalable(pgid) else []
    wanted = str(pgid).encode()
    return [pid for pid, fields in _live_processes() if wanted in (fields[2], fields[3])]


def _group_signalable(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def outlast_cancel(future: asyncio.Future[T]) -> T:
    """Await ``future`` to its end even if we are cancelled meanwhile; then let the cancel go on."""
    interrupted = False
    while not future.done():
        try:
            await asyncio.wait({future})
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        if not future.cancelled():
            future.exception()  # retrieved: its outcome no longer matters
        raise asyncio.CancelledError
    return future.result()


async def _settle(readers: asyncio.Future[tuple[None, None]]) -> None:
    if not readers.done():
        readers.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await readers
