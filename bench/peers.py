"""``touch triggers/run-now`` -> the job's first instruction: ours against ``watchmedo shell-command``, ``entr``
a watchdog handler that syncs one write first, and the least an asyncio service of our shape does.

The same touch (create the file, set its times through the descriptor: what ``touch`` does) in a folder each
tool watches, and the same job, ``bash -c 'echo $EPOCHREALTIME >> OUT'``: its first instruction stamps the
wall clock, read against ``time.time_ns()`` taken just before the touch. The tools run side by side in one
run, their tries interleaved (the order rotates each round), so the machine's load falls on all alike.

``ours``      the real service (``python -m orchestrator serve``, started as bench/latency.py starts it, a
              seeded state and ``--interval 100000`` so only the touches run it), ``--command`` the job: run
              without a shell. The trigger file is consumed; the next try waits until it is gone and the state
              has no run in flight. Ours must run exactly once per touch: the bench fails otherwise.
``watchmedo`` ``watchmedo shell-command --patterns '*' --ignore-directories --command JOB FOLDER`` (watchdog's
              own CLI, from the venv): it runs JOB through ``/bin/sh -c`` for every event, so a new file gives
              several runs (created, attrib: the time change, closed); the first is timed, all are counted.
              Nothing consumes the file: the bench removes it after the try (that removal's own runs, stamped
              after it, are not counted), so each touch creates the file anew, as in ours.
``entr``      ``entr -np JOB`` fed the trigger file's path, the file left in place (each touch changes its
              times): entr's best case, one run per touch after its 50 ms of collating events. Watching the
              folder instead (``echo FOLDER | entr -dnp JOB``) is slower and not a service: a new file runs JOB
              ~550 ms later, then entr exits with status 2 and must be started again in a loop (measured by
              hand, 2026-12-07: 552 ms); so the folder mode is not what is timed here.
``watchdog+fsync`` ``bench/durable_peer.py``: watchdog's observer (as watchmedo runs it) whose handler, on the
              file's creation, appends a line to a journal, ``fdatasync``s it and runs the job without a shell:
              the least a tool does that keeps "a trigger is on disk before its job runs". Not a product: the
              reference for what that one promise costs. The bench removes the file after the try.
``asyncio+fsync`` ``bench/asyncio_peer.py``: the floor of the service's shape: an asyncio loop reading the
              folder's inotify descriptor itself, one queue, one consumer that reads the file, appends and
              ``fdatasync``s a journal line, removes the file and runs the job as the service does
              (``create_subprocess_exec``, output on pipes, a session of its own). It takes the file on its
              close, as ours does (the file's content is the trigger's reason), and removes it.

Each try's runs are the lines stamped between its touch and the next try (for watchmedo: the removal); the
first of them is the latency. The service's "started pid" log lines count its runs a second way.

    python bench/peers.py [--tries N] [--warmup N] [--quiet-ms MS] [--code PATH]

``--code PATH``: the service runs the package found in PATH (put first on its ``PYTHONPATH``), e.g. the code
before a change checked out elsewhere; the path the service imports is printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # ``bench`` and ``tests.support`` live in the checkout

from bench.latency import load_average, machine, percentile, seed_state, touch  # noqa: E402
from tests.support import PYTHON, ServiceProcess, saved_state, start_service  # noqa: E402

JOB = "echo $EPOCHREALTIME >> {out}"
DURABLE_PEER = Path(__file__).resolve().parent / "durable_peer.py"
ASYNCIO_PEER = Path(__file__).resolve().parent / "asyncio_peer.py"
WAIT_SECONDS = 10.0
"""Longest wait for a try's first run; a miss aborts the bench."""
POLL_SECONDS = 0.0005


def stamps(out: Path) -> list[int]:
    """Every run's stamp in ``out`` (``$EPOCHREALTIME``, seconds.micros) as epoch ns."""
    try:
        text = out.read_text()
    except FileNotFoundError:
        return []
    return [int(Decimal(line.replace(",", ".")) * 1_000_000_000) for line in text.split()]


def wait_for(predicate: Callable[[], bool], what: str, within: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(POLL_SECONDS)


@dataclass
class Tool:
    """One contender: where it is touched, where its job writes, how it starts, settles and stops."""

    name: str
    trigger: Path
    out: Path
    latencies_ms: list[float] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)
    """Runs per timed touch."""

    def start(self) -> None: ...

    def settle(self) -> None:
        """After a try's first run: until the tool is ready for the next touch."""

    def reset(self, quiet: float) -> int:
        """After the quiet window: put the folder back as it was before the touch; the time (ns) from which
        runs are no longer the touch's."""
        return time.time_ns()

    def stop(self) -> None: ...


class Ours(Tool):
    def __init__(self, root: Path, bash: str, code: Path | None) -> None:
        super().__init__("ours", root / "triggers" / "run-now", root / "runs.out")
        self.root = root
        self.command = f"{bash} -c {shlex.quote(JOB.format(out=shlex.quote(str(self.out))))}"
        self.env = {"PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")])} if code else {}
        self.service: ServiceProcess | None = None

    def start(self) -> None:
        seed_state(self.root / "data")
        self.service = start_service(
            self.root, "--command", self.command, "--interval", "100000", "--log-level", "info", env=self.env
        )
        self.service.wait_ready()

    def settle(self) -> None:
        def idle() -> bool:
            if self.trigger.exists():
                return False
            try:
                return saved_state(self.root / "data")["current"] is None
            except (OSError, ValueError, KeyError):
                return False

        wait_for(idle, "the service to take the file and finish the run")

    def started_lines(self) -> int:
        return self.service.logs().count(": started pid ") if self.service else 0

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()


class Peer(Tool):
    def __init__(
        self, name: str, root: Path, argv: list[str], *, stdin: bytes = b"", keep_file: bool, takes_file: bool = False
    ) -> None:
        super().__init__(name, root / "triggers" / "run-now", root / "runs.out")
        self.argv = argv
        self.stdin = stdin
        self.keep_file = keep_file
        self.takes_file = takes_file
        """Whether the tool removes the file itself (as ours does): a try waits for that."""
        self.proc: subprocess.Popen[bytes] | None = None
        self.trigger.parent.mkdir(parents=True)
        if keep_file:
            self.trigger.touch()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(self.stdin)
        self.proc.stdin.close()

    def settle(self) -> None:
        if self.takes_file:
            wait_for(lambda: not self.trigger.exists(), f"{self.name} to take the file")

    def reset(self, quiet: float) -> int:
        until = time.time_ns()
        if not self.keep_file:
            self.trigger.unlink(missing_ok=self.takes_file)
            time.sleep(quiet)  # the removal's own runs (watchmedo) land before the next touch
        return until

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def one_try(tool: Tool, quiet: float) -> tuple[float, int]:
    """Touch, wait for the first run and the quiet window; (ms to the first run, runs of this touch)."""
    seen = len(stamps(tool.out))
    t0 = time.time_ns()
    touch(tool.trigger)
    wait_for(lambda: len(stamps(tool.out)) > seen, f"{tool.name}: a run after the touch")
    tool.settle()
    time.sleep(quiet)
    until = tool.reset(quiet)
    mine = [s for s in stamps(tool.out)[seen:] if t0 <= s < until]
    if not mine:
        raise RuntimeError(f"{tool.name}: no run stamped after the touch")
    return (min(mine) - t0) / 1e6, len(mine)


def ready(tool: Tool, quiet: float) -> None:
    """Touch until the tool answers (a watcher is ready some time after it starts), then let it settle."""
    deadline = time.monotonic() + WAIT_SECONDS
    seen = len(stamps(tool.out))
    while len(stamps(tool.out)) == seen:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{tool.name} never ran the job")
        touch(tool.trigger)
        time.sleep(0.2)
    tool.settle()
    time.sleep(quiet)
    tool.reset(quiet)


def row(tool: Tool) -> list[str]:
    ordered = sorted(tool.latencies_ms)
    runs = tool.runs
    spread = f"{min(runs)}" if min(runs) == max(runs) else f"{min(runs)}-{max(runs)}"
    values = [ordered[0], percentile(ordered, 50), percentile(ordered, 90), ordered[-1]]
    return [tool.name, str(len(ordered)), *(f"{v:.2f}" for v in values), f"{spread} (mean {sum(runs) / len(runs):.2f})"]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def ratio(ours: Tool, peer: Tool, p: float) -> str:
    return f"{percentile(sorted(ours.latencies_ms), p) / percentile(sorted(peer.latencies_ms), p):.2f}"


def service_code(code: Path | None, cwd: Path) -> str:
    """Where the service's interpreter, with the service's environment and folder, imports the package from."""
    env = {**os.environ}
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")])
    probe = "import orchestrator, os; print(os.path.dirname(orchestrator.__file__))"
    return subprocess.run(
        [PYTHON, "-c", probe], env=env, cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def tools_needed() -> tuple[str, str, str]:
    bash = shutil.which("bash")
    watchmedo = shutil.which("watchmedo", path=os.pathsep.join([str(Path(PYTHON).parent), os.environ["PATH"]]))
    entr = shutil.which("entr")
    missing = [name for name, path in (("bash", bash), ("watchmedo", watchmedo), ("entr", entr)) if path is None]
    if missing:
        raise SystemExit(f"not found: {', '.join(missing)} (watchmedo: pip install 'watchdog[watchmedo]')")
    assert bash and watchmedo and entr
    return bash, watchmedo, entr


def contenders(root: Path, code: Path | None) -> tuple[Ours, Peer, Peer, Peer, Peer]:
    """Ours, watchmedo, entr, the durable watchdog handler and the asyncio floor, each in a folder of its own
    under ``root``."""
    bash, watchmedo, entr = tools_needed()
    ours = Ours(root / "ours", bash, code)
    wm_out = root / "watchmedo" / "runs.out"
    wm_job = f"{bash} -c {shlex.quote(JOB.format(out=shlex.quote(str(wm_out))))}"
    wm = Peer(
        "watchmedo",
        root / "watchmedo",
        [watchmedo, "shell-command", "--patterns", "*", "--ignore-directories", "--command", wm_job],
        keep_file=False,
    )
    wm.argv.append(str(wm.trigger.parent))
    en_out = root / "entr" / "runs.out"
    en = Peer(
        "entr",
        root / "entr",
        [entr, "-np", bash, "-c", JOB.format(out=shlex.quote(str(en_out)))],
        stdin=f"{root / 'entr' / 'triggers' / 'run-now'}\n".encode(),
        keep_file=True,
    )
    du_root = root / "durable"
    du_job = [bash, "-c", JOB.format(out=shlex.quote(str(du_root / "runs.out")))]
    du_argv = [PYTHON, str(DURABLE_PEER), str(du_root / "triggers"), str(du_root / "journal"), *du_job]
    du = Peer("watchdog+fsync", du_root, du_argv, keep_file=False)
    as_root = root / "asyncio"
    as_job = [bash, "-c", JOB.format(out=shlex.quote(str(as_root / "runs.out")))]
    as_argv = [PYTHON, str(ASYNCIO_PEER), str(as_root / "triggers"), str(as_root / "journal"), *as_job]
    floor = Peer("asyncio+fsync", as_root, as_argv, keep_file=False, takes_file=True)
    return ours, wm, en, du, floor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=100, help="timed touches per tool (default 100)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed touches per tool first (default 5)")
    parser.add_argument("--quiet-ms", type=float, default=100.0, help="wait after a try's first run (default 100)")
    parser.add_argument("--code", type=Path, help="run the service from the package in this folder")
    args = parser.parse_args()
    tools_needed()  # before anything starts: a missing tool is said at once
    quiet = args.quiet_ms / 1000
    load_before, t_start = load_average(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        root = Path(tmp)
        ours, wm, en, du, floor = contenders(root, args.code)
        tools: list[Tool] = [ours, wm, en, du, floor]
        try:
            for tool in tools:
                tool.start()
            code = service_code(args.code, ours.root)
            for tool in tools:
                ready(tool, quiet)
            started_before = ours.started_lines()
            for n in range(args.warmup + args.tries):
                for tool in tools[n % len(tools) :] + tools[: n % len(tools)]:
                    ms, runs = one_try(tool, quiet)
                    if n >= args.warmup:
                        tool.latencies_ms.append(ms)
                        tool.runs.append(runs)
            time.sleep(1.0)  # a late run of ours would show in its log
            ours_started = ours.started_lines() - started_before
        finally:
            for tool in tools:
                tool.stop()
    elapsed = time.monotonic() - t_start
    touches = args.warmup + args.tries
    one_each = all(r == 1 for r in ours.runs) and ours_started == touches

    header = ["tool", "n", "min", "median", "p90", "worst", "runs per touch"]
    print(f"\n### touch -> the job's first instruction ({args.tries} touches per tool after {args.warmup}, ms)\n")
    print(table(header, [row(t) for t in tools]))
    print("\n### ratios (ours / peer)\n")
    print(
        table(
            ["", "median", "p90"],
            [[f"ours / {p.name}", ratio(ours, p, 50), ratio(ours, p, 90)] for p in (wm, en, du, floor)],
        )
    )
    print("\n### run counts\n")
    print(
        f"- ours: {touches} touches (warm-up included) -> {ours_started} 'started pid' log lines; every timed touch "
        f"{'exactly one run' if all(r == 1 for r in ours.runs) else 'NOT exactly one run'}: "
        f"**{'exactly one run per touch' if one_each else 'MISMATCH'}**"
    )
    print(
        f"- watchmedo: {sum(wm.runs)} runs for {len(wm.runs)} touches: one per event it reports (created, attrib, "
        "closed), the first timed; the removal after each try runs it again (not counted)"
    )
    print(f"- entr: {sum(en.runs)} runs for {len(en.runs)} touches")
    print(f"- watchdog+fsync: {sum(du.runs)} runs for {len(du.runs)} touches (on the file's creation only)")
    print(f"- asyncio+fsync: {sum(floor.runs)} runs for {len(floor.runs)} touches (on the file's close)")
    print(
        "- reference floor: asyncio+fsync / watchmedo "
        f"{percentile(sorted(floor.latencies_ms), 50) / percentile(sorted(wm.latencies_ms), 50):.2f} (median)"
    )
    facts = {
        **machine(),
        "service code": code,
        "fd limit (soft/hard)": "/".join(map(str, resource.getrlimit(resource.RLIMIT_NOFILE))),
        "load average 1/5/15": f"{load_before} before, {load_average()} after",
        "took": f"{elapsed:.0f} s",
    }
    print("\n" + "\n".join(f"- {k}: {v}" for k, v in facts.items()))
    return 0 if one_each else 1


if __name__ == "__main__":
    raise SystemExit(main())
