"""Event streams under load, against a real service process (``python -m orchestrator serve``) in a temp folder.

Three phases, each with its own service on a free port (``--command true --interval 100000``: one instant
start-up run, then nothing is due, so every event is one this benchmark caused):

``churn``      ``--rounds`` rounds of ``--clients`` raw clients that connect and send the GET; of every 8, one
               resets (SO_LINGER 0 -> RST) right after connecting, one right after its request, the rest read
               the response head, stay until all have, then all reset at once. After each round, once
               ``/health`` says no stream is open: the service's VmRSS and open fds (``/proc/<pid>``).
``broadcast``  N clients hold a stream open and read it; ``--tries`` times, an atomic write of the progress
               file -> the time each client has the ``status`` event that shows it (from the write's return).
               Clients and service share the machine's cores, so the last client's time includes this
               process reading N sockets; RSS with N streams open gives the cost of one.
``stalled``    ``--stalled`` clients send the GET and never read (SO_RCVBUF 4 KiB) while one client reads;
               progress writes as fast as the reader takes them, until the service has dropped every stalled
               client (``/health`` sseClients back to 1). RSS before, at its highest, after.

The churn helpers are the fault test's own (``tests/faults/test_sse_load.py``), so the benchmark measures
exactly what the test checks, at a larger scale.

    python bench/sse_load.py [--rounds 10] [--clients 1000] [--broadcast 100,1000,3000] [--tries 20]
                             [--stalled 50]

Prints a Markdown section (for ``bench/RESULTS.md``) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # ``tests`` lives in the checkout, not in the installed package

from bench.latency import seed_state  # noqa: E402
from orchestrator.disk.atomic import write_json_atomic  # noqa: E402
from orchestrator.http.streamclient import WRITE_BUFFER_CAP  # noqa: E402
from orchestrator.live.progress import PROGRESS_FILE_NAME  # noqa: E402
from tests.faults.test_sse_load import REQUEST, SLOW_RCVBUF, Usage, churn, connect_raw, reset, usage  # noqa: E402
from tests.support import ServiceProcess, start_service  # noqa: E402

MARK = re.compile(rb"bench-(\d+)-end")
WAIT = 30.0


def launch(root: Path) -> ServiceProcess:
    seed_state(root / "data")  # a run "just ended": none is due, and the progress file is shown as written
    # One address opens every client here: without the per-client cap, as if each were another browser.
    service = start_service(
        root, "--command", "true", "--interval", "100000", "--streams-per-client", "0", "--connections-per-client", "0"
    )
    service.wait_ready()
    return service


async def until(what: str, check: Callable[[], Any], within: float = WAIT) -> Any:
    """Bounded polling: nothing tells this process when the service has noticed a reset or a drop."""
    deadline = time.monotonic() + within
    while not (result := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {within}s")
        await asyncio.sleep(0.02)
    return result


def sse_clients(service: ServiceProcess) -> int:
    return int(service.get_json("/health")["sseClients"])


def write_progress(service: ServiceProcess, n: int, pad: int = 0) -> None:
    step = f"bench-{n}-end" + " " * pad
    write_json_atomic(service.data_dir / PROGRESS_FILE_NAME, {"status": "running", "step": step, "progress": n % 100})


def ms(ns: float) -> str:
    return f"{ns / 1e6:.1f}"


# ------------------------------------------------------------------------------------------------ churn
async def churn_phase(root: Path, rounds: int, clients: int) -> list[str]:
    service = launch(root)
    pid = service.proc.pid
    try:
        idle = usage(pid)
        rows: list[tuple[int, float, int, Usage]] = []
        for n in range(rounds):
            started = time.monotonic()
            held = await churn(service.port, clients)
            await until("every stream closed", lambda: sse_clients(service) == 0)
            rows.append((n + 1, time.monotonic() - started, held, usage(pid)))
        logs = service.logs()
    finally:
        service.stop()
    warm = rows[0][3]
    last = rows[-1][3]
    lines = [
        f"### Churn: {rounds} rounds x {clients} clients that vanish (RST)",
        "",
        f"Idle before any client: {idle.rss_kib / 1024:.1f} MiB RSS, {idle.fds} fds.",
        "",
        "| round | took (s) | streams open at once | VmRSS after (MiB) | vs round 1 (KiB) | open fds after |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n, took, held, u in rows:
        lines.append(
            f"| {n} | {took:.2f} | {held} | {u.rss_kib / 1024:.1f} | {u.rss_kib - warm.rss_kib:+d} | {u.fds} |"
        )
    problems = sum(logs.count(p) for p in ("Traceback", "Error handling request", "never retrieved"))
    lines += [
        "",
        f"After round 1 -> after round {rounds}: RSS {last.rss_kib - warm.rss_kib:+d} KiB, "
        f"fds {last.fds - warm.fds:+d}; "
        f"{rounds * clients} clients, {sum(r[2] for r in rows)} streams; tracebacks/errors in the service log: "
        f"{problems}.",
        "",
    ]
    return lines


# -------------------------------------------------------------------------------------------- broadcast
@dataclass
class Wanted:
    """The marker every listener is waiting for, and how many have yet to see it."""

    n: int = -1
    remaining: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def expect(self, n: int, listeners: int) -> None:
        self.n, self.remaining, self.arrived = n, listeners, asyncio.Event()


class Listener:
    """One reading client: when each bench marker first arrived (``perf_counter_ns``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, wanted: Wanted) -> None:
        self.reader, self.writer, self.wanted = reader, writer, wanted
        self.seen: dict[int, int] = {}

    async def run(self) -> None:
        tail = b""
        while chunk := await self.reader.read(65536):
            now = time.perf_counter_ns()
            data = tail + chunk
            for match in MARK.finditer(data):
                n = int(match.group(1))
                if n not in self.seen:
                    self.seen[n] = now
                    if n == self.wanted.n:
                        self.wanted.remaining -= 1
                        if not self.wanted.remaining:
                            self.wanted.arrived.set()
            tail = data[-32:]


async def broadcast_phase(root: Path, sizes: list[int], tries: int) -> list[str]:
    lines = [
        f"### Broadcast: a progress write -> every one of N reading clients has the event ({tries} tries each)",
        "",
        "| N clients | RSS with N open (MiB) | per stream (KiB) | first client p50 (ms) | median client p50 (ms) "
        "| last client p50 (ms) | last client worst (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        service = launch(root / f"broadcast-{size}")
        pid = service.proc.pid
        listeners: list[Listener] = []
        tasks: list[asyncio.Task[None]] = []
        wanted = Wanted()
        try:
            idle = usage(pid)
            for start in range(0, size, 100):
                batch = await asyncio.gather(
                    *(asyncio.open_connection("127.0.0.1", service.port) for _ in range(min(100, size - start)))
                )
                for reader, writer in batch:
                    writer.write(REQUEST)
                    listeners.append(Listener(reader, writer, wanted))
            tasks = [asyncio.create_task(listener.run()) for listener in listeners]
            await until("all streams open", lambda s=service, n=size: sse_clients(s) == n)
            with_streams = usage(pid)
            firsts, medians, lasts = [], [], []
            for n in range(tries + 2):  # two warm-up writes
                wanted.expect(n, size)
                write_progress(service, n)
                written = time.perf_counter_ns()
                await asyncio.wait_for(wanted.arrived.wait(), WAIT)
                if n >= 2:
                    times = sorted(listener.seen[n] - written for listener in listeners)
                    firsts.append(times[0])
                    medians.append(times[len(times) // 2])
                    lasts.append(times[-1])
        finally:
            for task in tasks:
                task.cancel()
            for listener in listeners:
                listener.writer.transport.abort()
            service.stop()
        per_stream = (with_streams.rss_kib - idle.rss_kib) / size
        lines.append(
            f"| {size} | {with_streams.rss_kib / 1024:.1f} | {per_stream:.1f} | {ms(statistics.median(firsts))} "
            f"| {ms(statistics.median(medians))} | {ms(statistics.median(lasts))} | {ms(max(lasts))} |"
        )
    lines.append("")
    return lines


# ---------------------------------------------------------------------------------------------- stalled
async def stalled_phase(root: Path, stalled: int) -> list[str]:
    service = launch(root / "stalled")
    pid = service.proc.pid
    loop = asyncio.get_running_loop()
    socks: list[socket.socket] = []
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(REQUEST)
        wanted = Wanted()
        listener = Listener(reader, writer, wanted)
        reading = asyncio.create_task(listener.run())
        for _ in range(stalled):
            sock = await connect_raw(service.port, rcvbuf=SLOW_RCVBUF)
            await loop.sock_sendall(sock, REQUEST)
            socks.append(sock)
        await until("all streams open", lambda: sse_clients(service) == stalled + 1)
        before = usage(pid)
        peak = before
        started = time.monotonic()
        lags: list[int] = []
        writes = 0
        while sse_clients(service) > 1:
            if writes > 20000:
                raise RuntimeError("stalled clients were not dropped")
            wanted.expect(writes, 1)
            write_progress(service, writes, pad=400)  # a ~1 KiB event, like a long step text
            written = time.perf_counter_ns()
            await asyncio.wait_for(wanted.arrived.wait(), WAIT)
            lags.append(listener.seen[writes] - written)
            writes += 1
            if writes % 50 == 0:
                now = usage(pid)
                peak = now if now.rss_kib > peak.rss_kib else peak
        took = time.monotonic() - started
        after = usage(pid)
        reading.cancel()
        writer.transport.abort()
        logs = service.logs()
        by_cap, by_timeout = logs.count("it stopped reading"), logs.count("could not be sent within")
    finally:
        for sock in socks:
            reset(sock)
        service.stop()
    lags.sort()
    return [
        f"### Stalled: {stalled} clients that never read, one that does",
        "",
        f"- {writes} progress writes (~1 KiB events) until the service had dropped all {stalled}: {took:.1f} s. "
        f"Dropped by the buffer cap: {by_cap}; by the send timeout: {by_timeout}; by the kernel "
        f"(TCP_USER_TIMEOUT = send timeout, window closed too long): {stalled - by_cap - by_timeout}.",
        f"- The reading client meanwhile: write -> event p50 {ms(lags[len(lags) // 2])} ms, "
        f"p99 {ms(lags[int(len(lags) * 0.99)])} ms, worst {ms(lags[-1])} ms.",
        f"- Service VmRSS: {before.rss_kib / 1024:.1f} MiB before, {peak.rss_kib / 1024:.1f} MiB at most (sampled "
        f"every 50 writes), {after.rss_kib / 1024:.1f} MiB after; the cap allows "
        f"{stalled * WRITE_BUFFER_CAP / 1024 / 1024:.1f} MiB of user-space buffers for {stalled} clients, the "
        "rest waits in kernel socket buffers (not RSS) until the drop frees it.",
        "",
    ]


# ------------------------------------------------------------------------------------------------- main
async def main_async(args: argparse.Namespace) -> int:
    needed = 2 * max([args.clients, *args.broadcast, args.stalled]) + 500
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))  # the service inherits it
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sse-load-") as tmp:
        root = Path(tmp)
        body = await churn_phase(root / "churn", args.rounds, args.clients)
        body += await broadcast_phase(root, args.broadcast, args.tries)
        body += await stalled_phase(root, args.stalled)
    command = (
        f"python bench/sse_load.py --rounds {args.rounds} --clients {args.clients} "
        f"--broadcast {','.join(map(str, args.broadcast))} --tries {args.tries} --stalled {args.stalled}"
    )
    print("\n".join([f"Command: `{command}` (took {time.monotonic() - began:.0f} s)", "", *body]))
    return 0


def sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--broadcast", type=sizes, default=[100, 1000, 3000])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--stalled", type=int, default=50)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
