"""A job's process tree: signalling it, telling whether any of it lives, finding what is left of a run that an
earlier service died in (by ``SNAPSHOT_RUN_ID``), and the one way a tree is stopped: SIGTERM, a grace period,
then SIGKILL (:func:`escalate`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from signal import Signals
from typing import Protocol

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
"""How often a tree is looked at while it is given time to end: the kernel tells no one when a group empties."""
LEFTOVER_PATIENCE_SECONDS = 5.0
"""After SIGKILL, how long a leftover may take to die before the wait is logged."""


class Tree(Protocol):
    """The processes :func:`escalate` stops, and what it says while it does."""

    def signal(self, sig: Signals) -> bool:
        """Send ``sig`` to every live member; ``False`` if there was none."""
        ...

    def alive(self) -> bool: ...

    def term_stragglers(self) -> None:
        """Between looks during the grace period: SIGTERM to members that may have missed it."""
        ...

    async def wait_exit(self, within: float) -> None:
        """Wait up to ``within`` seconds for the main process to exit (nothing to wait for if it is not our child)."""
        ...

    def said(self, sig: Signals, grace: float) -> None:
        """Log that ``sig`` was sent."""
        ...

    async def reap(self, grace: float) -> None:
        """After SIGKILL: wait for the tree to be gone (how long is the tree's to say)."""
        ...


async def escalate(tree: Tree, grace: float) -> bool:
    """SIGTERM the tree, give it up to ``grace`` seconds to empty, then SIGKILL it. ``False`` if nothing of it
    was alive to signal."""
    if not tree.signal(signal.SIGTERM):
        return False
    tree.said(signal.SIGTERM, grace)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    await tree.wait_exit(grace)
    # The leader may be gone while its children linger: the tree is what must be empty.
    while tree.alive() and loop.time() < deadline:
        tree.term_stragglers()
        await asyncio.sleep(POLL_SECONDS)
    if tree.alive():  # zombies waiting for a reaper count for killpg, not for us
        tree.signal(signal.SIGKILL)
        tree.said(signal.SIGKILL, grace)
        await tree.reap(grace)
    return True


class JobGroup:
    """The tree of a job this service spawned: ``pgid`` is the job's pid (with ``start_new_session`` the job
    leads its own group), ``exited`` resolves when the job's main process exits."""

    def __init__(self, run_id: str, pgid: int, exited: asyncio.Future[int]) -> None:
        self.run_id = run_id
        self.pgid = pgid
        self.exited = exited

    def signal(self, sig: Signals) -> bool:
        return signal_group(self.pgid, sig)

    def alive(self) -> bool:
        return group_alive(self.pgid)

    def term_stragglers(self) -> None:
        pass  # the job's own clean-up runs on the first SIGTERM; a second could cut it short

    async def wait_exit(self, within: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await asyncio.shield(self.exited)

    def said(self, sig: Signals, grace: float) -> None:
        if sig is signal.SIGTERM:
            log.info("run %s: sent SIGTERM to process group %d", self.run_id, self.pgid)
        else:
            log.warning("run %s: process group %d ignored SIGTERM for %gs; sent SIGKILL", self.run_id, self.pgid, grace)

    async def reap(self, grace: float) -> None:
        await self.wait_exit(grace)


class Leftover:
    """What is left of the job of a run an earlier service died in: not our children, so no exit to wait
    for; looked for again at each step (a child forked meanwhile is signalled too)."""

    def __init__(self, run_id: str, found: set[int]) -> None:
        self.run_id = run_id
        self.found = found

    def signal(self, sig: Signals) -> bool:
        _signal_all(self.found, sig)
        return bool(self.found)

    def alive(self) -> bool:
        self.found = processes_of_run(self.run_id)
        return bool(self.found)

    def term_stragglers(self) -> None:
        _signal_all(self.found, signal.SIGTERM)

    async def wait_exit(self, within: float) -> None:
        pass

    def said(self, sig: Signals, grace: float) -> None:
        if sig is signal.SIGKILL:
            log.warning(
                "run %s: %d leftover process(es) ignored SIGTERM for %gs; sent SIGKILL",
                self.run_id,
                len(self.found),
                grace,
            )

    async def reap(self, grace: float) -> None:
        """Until none is left, however long: a process in uninterruptible I/O dies only once its I/O ends, and
        a child forked since the last look has not been signalled yet. Nothing starts before."""
        loop = asyncio.get_running_loop()
        patience = loop.time() + LEFTOVER_PATIENCE_SECONDS
        said = False
        while True:
            if not said and loop.time() > patience:
                log.error(
                    "run %s: leftover process(es) %s still alive after SIGKILL; waiting",
                    self.run_id,
                    sorted(self.found),
                )
                said = True
            await asyncio.sleep(POLL_SECONDS)
            if not self.alive():
                return
            self.signal(signal.SIGKILL)


async def stop_leftover(run_id: str, grace: float) -> bool:
    """Stop what is left of the job of a run that an earlier service died in (it was killed, not stopped).

    Its processes are found by ``SNAPSHOT_RUN_ID`` in their environment, which every process of the job's
    tree inherits: the run id is on disk before the job is spawned, its pid only after, so a crash in between
    leaves nothing else to go by. The sessions they lead are searched too (a child that cleared its
    environment but kept the job's session). A group id reused since by something else is left alone: only a
    process proven to be the run's counts. ``True`` if a leftover was found and stopped."""
    found = processes_of_run(run_id)
    if not found:
        return False
    log.warning(
        "run %s: its job outlived the service (%d process%s: %s); stopping it",
        run_id,
        len(found),
        "" if len(found) == 1 else "es",
        " ".join(map(str, sorted(found)[:10])),
    )
    return await escalate(Leftover(run_id, found), grace)


def processes_of_run(run_id: str) -> set[int]:
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
        found.update(group_members(leader))
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


def _signal_all(pids: set[int], sig: Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def signal_group(pgid: int, sig: Signals) -> bool:
    """Signal the job's tree: its process group, and members of its session in other groups."""
    signalled = False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
        signalled = True
    for pid in group_members(pgid):
        if pid != pgid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)  # already signalled if still in the group: a second one is harmless
                signalled = True
    return signalled


def group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process of the job's tree is left."""
    return bool(group_members(pgid))


def group_members(pgid: int) -> list[int]:
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
