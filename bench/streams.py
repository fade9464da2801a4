"""Open event streams: how many a service on a default descriptor limit accepts, how long one progress change takes
to reach the last of them, and what each costs the service in memory; beside a bare aiohttp app in the same run.

The service (``python -m orchestrator serve``, ``--command true --interval 100000``, its state seeded with a run
that just ended, so nothing is due) runs under ``prlimit --nofile=1024:20000``, a default-like soft limit under a
higher hard one, so it has to raise its own limit to hold the streams. One client address opens every stream
here, so the caps by address are lifted with the settings made for that (``--streams-per-client 0
--connections-per-client 0``).

The clients are ``--procs`` separate processes (this script with ``--client``), each a plain ``epoll`` loop over
raw sockets: far cheaper per stream than an HTTP client library, so the time measured is the service's. Each opens
its share of N streams of ``/api/snapshot/events`` in batches, and a stream counts as open once its first event
(the current state) has arrived; a ``503`` counts as refused. Then ``--tries`` times: an atomic write of the
progress file whose step says ``bench-<n>-end``, and the time (``CLOCK_MONOTONIC``, the same in every process)
from just before the write until each stream has the event that shows it.

The reference (this script with ``--reference``) is a bare aiohttp app: each ``GET`` gets a ``StreamResponse``
(``text/event-stream``, chunked) with one event, and a line on its stdin makes it write one pre-encoded event,
padded to the size of the service's status event, to every open response, one ``await response.write`` after
the other. No file, no watch, no status document: the floor for "one change to N aiohttp streams" on this machine.

Memory per stream: the process's VmRSS with N streams open less its VmRSS before the first, over N.

    python bench/streams.py [--streams 10000] [--tries 20] [--procs 1] [--code /work/base]

``--code``: run the service from another checkout (its folder goes first on the service's ``PYTHONPATH``; the
service's ``orchestrator`` is printed, to show which ran). Prints a Markdown section (for ``bench/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # ``tests`` lives in the checkout, not in the installed package

from bench.latency import seed_state  # noqa: E402
from orchestrator.disk.atomic import write_json_atomic  # noqa: E402
from orchestrator.live.progress import PROGRESS_FILE_NAME  # noqa: E402
from tests.support import PYTHON, free_port, start_service  # noqa: E402

LIMIT = "--nofile=1024:20000"
EVENTS_PATH = "/api/snapshot/events"
BATCH = 200
"""Connections a client opens at once (then waits for their first events): the listen backlog is 128 or so."""
WAIT = 60.0


# ------------------------------------------------------------------------------------------- the client
def request(port: int) -> bytes:
    return f"GET {EVENTS_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()


def client_main(port: int, count: int) -> int:
    """A client process: open ``count`` streams, then answer ``expect <n>`` lines on stdin with the arrival time
    of event ``n`` on each stream (one line of numbers), until stdin ends."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    poller = select.epoll()
    socks: dict[int, socket.socket] = {}
    refused = sum(open_batch(port, min(BATCH, count - start), poller, socks) for start in range(0, count, BATCH))
    out = sys.stdout
    out.write(f"open {len(socks)} {refused}\n")
    out.flush()
    for line in sys.stdin:
        marker = f"bench-{int(line.split()[1])}-end".encode()
        out.write("ready\n")
        out.flush()
        arrived = arrivals(marker, poller, socks)
        out.write(" ".join(map(str, arrived.values())) + "\n")
        out.flush()
    return 0


def open_batch(port: int, count: int, poller: select.epoll, socks: dict[int, socket.socket]) -> int:
    """Open ``count`` streams (into ``socks``) and wait for the first event of each; how many were refused."""
    pending: dict[int, bytes] = {}
    refused = 0
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(request(port))
        sock.setblocking(False)
        pending[sock.fileno()] = b""
        socks[sock.fileno()] = sock
        poller.register(sock.fileno(), select.EPOLLIN)
    deadline = time.monotonic() + WAIT
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} streams got no first event within {WAIT}s")
        for fd, _ in poller.poll(1.0):
            if fd not in pending:
                continue
            data = pending[fd] + socks[fd].recv(65536)
            if data.startswith((b"HTTP/1.1 503", b"HTTP/1.1 429")) or not data:
                refused += 1
                del pending[fd]
                poller.unregister(fd)
                socks.pop(fd).close()
            elif data.count(b"\r\n\r\n") >= 2:  # the head, then the first event
                del pending[fd]
            else:
                pending[fd] = data
    return refused


def arrivals(marker: bytes, poller: select.epoll, socks: dict[int, socket.socket]) -> dict[int, int]:
    """When ``marker`` arrived on each stream (``CLOCK_MONOTONIC``, ns)."""
    arrived: dict[int, int] = {}
    tails = dict.fromkeys(socks, b"")
    deadline = time.monotonic() + WAIT
    while len(arrived) < len(socks):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(socks) - len(arrived)} streams did not get {marker!r} within {WAIT}s")
        for fd, _ in poller.poll(1.0):
            chunk = socks[fd].recv(65536)
            now = time.monotonic_ns()
            if not chunk:
                raise RuntimeError("a stream was closed by the server")
            if fd in arrived:
                continue
            data = tails[fd] + chunk
            if marker in data:
                arrived[fd] = now
            else:
                tails[fd] = data[-len(marker) :]
    return arrived


@dataclass
class Clients:
    procs: list[subprocess.Popen[str]]
    accepted: int
    refused: int

    @classmethod
    def open(cls, port: int, n: int, procs: int) -> Clients:
        shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        started = [
            subprocess.Popen(
                [PYTHON, __file__, "--client", str(port), str(share)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for share in shares
            if share
        ]
        accepted = refused = 0
        for proc in started:
            _, ok, no = _line(proc).split()
            accepted, refused = accepted + int(ok), refused + int(no)
        return cls(started, accepted, refused)

    def expect(self, n: int) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(f"expect {n}\n")
            proc.stdin.flush()
        for proc in self.procs:
            assert _line(proc) == "ready"

    def arrivals(self) -> list[int]:
        return sorted(int(t) for proc in self.procs for t in _line(proc).split())

    def close(self) -> None:
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in self.procs:
            proc.wait(timeout=WAIT)


def _line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"a client process ended (exit {proc.wait()})")
    return line.strip()


# ---------------------------------------------------------------------------------------- the reference
def reference_main(port: int, pad: int) -> int:
    """The bare aiohttp app: streams of pre-encoded events; ``emit <n>`` on stdin writes event ``n`` to all."""
    import asyncio

    from aiohttp import web

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # as the service does: it needs them as much

    def frame(n: int) -> bytes:
        data = json.dumps({"step": f"bench-{n}-end", "pad": "x" * pad})
        return f"id: {n}\r\nevent: status\r\ndata: {data}\r\nretry: 2000\r\n\r\n".encode()

    streams: set[web.StreamResponse] = set()
    current = [frame(-1)]

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(current[0])
        streams.add(response)
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            streams.discard(response)
        return response

    async def emit(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

        async def read() -> None:
            while line := await reader.readline():
                current[0] = frame(int(line.split()[1]))
                for response in tuple(streams):
                    await response.write(current[0])

        app["emitter"] = asyncio.create_task(read())

    app = web.Application()
    app.router.add_get(EVENTS_PATH, events)
    app.on_startup.append(emit)
    print("listening on", port, flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handler_cancellation=True, shutdown_timeout=1)
    return 0


# -------------------------------------------------------------------------------------------- a target
def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@dataclass
class Result:
    name: str
    n: int
    accepted: int
    refused: int
    idle_kib: int
    open_kib: int
    lasts: list[float]
    medians: list[float]
    p99s: list[float]

    @property
    def per_stream_kib(self) -> float:
        return (self.open_kib - self.idle_kib) / self.accepted if self.accepted else float("nan")


@dataclass
class Target:
    """What is measured: its name, process and port, and how to make one change (``trigger(n)``)."""

    name: str
    pid: int
    port: int
    trigger: Any


def measure(target: Target, n: int, args: argparse.Namespace) -> Result:
    name, pid, port, trigger = target.name, target.pid, target.port, target.trigger
    idle = rss_kib(pid)
    clients = Clients.open(port, n, args.procs)
    try:
        opened = rss_kib(pid)
        lasts, medians, p99s = [], [], []
        for attempt in range(args.tries + 1):  # the first is a warm-up
            clients.expect(attempt)
            began = time.monotonic_ns()
            trigger(attempt)
            times = [(t - began) / 1e6 for t in clients.arrivals()]
            if attempt and times:
                lasts.append(times[-1])
                medians.append(times[len(times) // 2])
                p99s.append(times[min(len(times) - 1, int(len(times) * 0.99))])
    finally:
        clients.close()
    return Result(name, n, clients.accepted, clients.refused, idle, opened, lasts, medians, p99s)


def service_run(root: Path, n: int, args: argparse.Namespace) -> tuple[Result, int]:
    """The service with ``n`` streams; also the size of its status event (for the reference's)."""
    seed_state(root / "data")
    env = {"PYTHONPATH": os.pathsep.join([str(args.code), os.environ.get("PYTHONPATH", "")])} if args.code else None
    service = start_service(
        root,
        *("--command", "true", "--interval", "100000", "--log-level", "info"),
        *("--streams-per-client", "0", "--connections-per-client", "0"),
        env=env,
        prefix=("prlimit", LIMIT),
    )
    try:
        service.wait_ready()
        size = len(json.dumps(service.get_json("/api/snapshot/status")))

        def trigger(attempt: int) -> None:
            step = {"status": "running", "step": f"bench-{attempt}-end", "progress": attempt % 100}
            write_json_atomic(service.data_dir / PROGRESS_FILE_NAME, step)

        result = measure(Target("service", service.proc.pid, service.port, trigger), n, args)
    finally:
        service.stop()
    return result, size


def reference_run(n: int, pad: int, args: argparse.Namespace) -> Result:
    port = free_port()
    proc = subprocess.Popen(
        ["prlimit", LIMIT, PYTHON, __file__, "--reference", str(port), str(pad)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert "listening" in proc.stdout.readline()
        _wait_port(port)
        stdin: IO[str] = proc.stdin

        def trigger(attempt: int) -> None:
            stdin.write(f"emit {attempt}\n")
            stdin.flush()

        return measure(Target("bare aiohttp app", proc.pid, port, trigger), n, args)
    finally:
        proc.terminate()
        proc.wait(timeout=WAIT)


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def service_code(args: argparse.Namespace) -> str:
    env = {**os.environ, "PYTHONPATH": str(args.code)} if args.code else None
    return subprocess.run(
        [PYTHON, "-c", "import orchestrator; print(orchestrator.__file__)"],
        cwd=tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


# ------------------------------------------------------------------------------------------------ report
def ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    values = sorted(values)
    return f"{values[min(len(values) - 1, int(len(values) * q))]:.1f}"


def rows(service: Result, reference: Result) -> list[str]:
    out = []
    for r in (service, reference):
        out.append(
            f"| {r.name} | {r.n} | {r.accepted} | {r.refused} | {ms(r.lasts, 0.5)} | {ms(r.lasts, 0.99)} "
            f"| {ms(r.lasts, 1.0)} | {ms(r.medians, 0.5)} | {r.idle_kib / 1024:.1f} | {r.open_kib / 1024:.1f} "
            f"| {r.per_stream_kib:.1f} |"
        )
    if service.lasts and reference.lasts:
        ratio = statistics.median(service.lasts) / statistics.median(reference.lasts)
        memory = service.per_stream_kib / reference.per_stream_kib
        out.append(f"| **service / reference** | | | | **{ratio:.2f}x** | | | | | | **{memory:.2f}x** |")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=lambda s: [int(p) for p in s.split(",") if p], default=[10000])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--procs", type=int, default=1, help="client processes")
    parser.add_argument("--code", type=Path, default=None, help="run the service from this checkout")
    parser.add_argument("--client", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reference", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        return client_main(*args.client)
    if args.reference:
        return reference_main(*args.reference)
    began = time.monotonic()
    load = os.getloadavg()
    lines = [
        "| target | N | open | refused | last stream p50 (ms) | p99 (ms) | max (ms) | median stream p50 (ms) "
        "| RSS idle (MiB) | RSS with N (MiB) | per stream (KiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory(prefix="streams-") as tmp:
        for n in args.streams:
            service, size = service_run(Path(tmp) / f"service-{n}", n, args)
            reference = reference_run(n, max(0, size - 40), args)
            lines += rows(service, reference)
    command = f"python bench/streams.py --streams {','.join(map(str, args.streams))} --tries {args.tries}"
    command += f" --procs {args.procs}" + (f" --code {args.code}" if args.code else "")
    print(
        "\n".join(
            [
                f"Command: `{command}` (took {time.monotonic() - began:.0f} s; {os.cpu_count()} cores, load average "
                f"{load[0]:.2f} at the start; service under `prlimit {LIMIT}`; service code: `{service_code(args)}`)",
                "",
                f"### One progress change -> the last of N event streams ({args.tries} tries; {args.procs} client "
                "process(es))",
                "",
                *lines,
                "",
            ]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
