"""A run that absorbed a flood of long reasons, under many open event streams: the status document's size
and what it costs everyone else, this checkout side by side with a reference revision in the same run.

For each variant (``--reference`` REV, taken out of git into a temp folder, and this checkout) a real service
process (``python -m orchestrator serve``, the variant's code first on ``PYTHONPATH``) runs a job that prints
``PROGRESS`` ten times a second. The benchmark opens ``--clients`` event streams that keep reading (raw
sockets spread over source addresses 127.0.0.2, .3, ...: ``--clients-per-address`` each), triggers a first
run, and while it runs sends ``--triggers`` HTTP triggers with ``--reason-chars``-character reasons; they
coalesce into the second run. During the second run it measures:

- the status document's size (``GET /api/snapshot/status``, bytes);
- ``--probes`` sequential ``GET /health`` on one keep-alive connection (ms): what every other request waits
  for while the service sends each progress change to every stream;
- the status events one stream received per second (the job makes ten changes a second).

    python bench/status_flood.py [--reference b8e5f3f] [--clients 1000] [--triggers 100] [--rounds 2]

Prints a Markdown section (for ``bench/RESULTS.md``) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # ``tests`` lives in the checkout, not in the installed package

from bench.latency import seed_state  # noqa: E402
from tests.support import ServiceProcess, start_service  # noqa: E402

WAIT = 60.0
JOB = """\
import os, sys, time
seconds = 2.0 if os.environ.get("SNAPSHOT_REASON", "").startswith("first") else float(sys.argv[1])
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    i += 1
    print(f"PROGRESS {i % 100} step {i}", flush=True)
    time.sleep(0.1)
"""


@dataclass(frozen=True)
class Result:
    variant: str
    status_bytes: int
    health_ms: list[float]
    events_per_second: float


def source_tree(reference: str, into: Path) -> Path:
    """The reference revision's files, out of git (no worktree left behind)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", reference], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


async def open_streams(port: int, count: int, per_address: int) -> list[socket.socket]:
    loop = asyncio.get_running_loop()
    request = f"GET /api/snapshot/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n"
    socks = []
    for i in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((f"127.0.0.{2 + i // per_address}", 0))
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, request.encode())
        socks.append(sock)
    return socks


async def drain(sock: socket.socket, counted: list[int] | None) -> None:
    """Read and discard; ``counted``: count the status events of this one stream."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(OSError):
        while chunk := await loop.sock_recv(sock, 1 << 16):
            if counted is not None:
                counted[0] += chunk.count(b"event: status")


async def wait_for(session: aiohttp.ClientSession, url: str, check: Callable[[dict[str, Any]], bool]) -> None:
    """Ask for the status until ``check`` holds (a benchmark may poll: nothing here is timed)."""
    async with asyncio.timeout(WAIT):
        while True:
            async with session.get(url + "/api/snapshot/status") as response:
                doc = await response.json()
            if check(doc):
                return
            await asyncio.sleep(0.05)


async def measure(service: ServiceProcess, args: argparse.Namespace, variant: str) -> Result:
    url = service.url.rstrip("/")
    socks = await open_streams(service.port, args.clients, args.clients_per_address)
    counted = [0]
    readers = [asyncio.create_task(drain(s, counted if i == 0 else None)) for i, s in enumerate(socks)]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(url + "/api/snapshot/trigger", json={"reason": "first"}) as response:
                assert response.status == 202, response.status
            await wait_for(session, url, lambda doc: bool(doc["running"]))

            async def one(i: int) -> None:
                reason = f"{i:04d} " + "x" * (args.reason_chars - 5)
                async with session.post(url + "/api/snapshot/trigger", json={"reason": reason}) as response:
                    assert response.status == 202, response.status

            await asyncio.gather(*(one(i) for i in range(args.triggers)))
            await wait_for(session, url, lambda doc: (doc["currentRun"] or {}).get("triggerCount", 0) >= args.triggers)
            async with session.get(url + "/api/snapshot/status") as response:
                status_bytes = len(await response.read())
            counted[0] = 0
            started = time.perf_counter()
            health = []
            for _ in range(args.probes):
                t0 = time.perf_counter()
                async with session.get(url + "/health") as response:
                    await response.read()
                health.append((time.perf_counter() - t0) * 1000)
            events = counted[0] / (time.perf_counter() - started)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for sock in socks:
            sock.close()
    return Result(variant, status_bytes, health, events)


def run_variant(root: Path, source: Path, args: argparse.Namespace, variant: str) -> Result:
    seed_state(root / "data")
    job = root / "job.py"
    job.write_text(JOB)
    service = start_service(
        root,
        "--command",
        f"{sys.executable} {job} {args.run_seconds}",
        "--interval",
        "100000",
        "--trigger-limit",
        "0",
        env={"PYTHONPATH": str(source)},
    )
    try:
        if not service.listening.wait(WAIT):
            raise SystemExit(f"{variant}: the service did not start; see {service.log_path}")
        return asyncio.run(measure(service, args, variant))
    finally:
        service.proc.terminate()
        service.proc.wait(WAIT)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", default="b8e5f3f", help="git revision to compare with (default b8e5f3f)")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--clients-per-address", type=int, default=10)
    parser.add_argument("--triggers", type=int, default=100)
    parser.add_argument("--reason-chars", type=int, default=500)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--run-seconds", type=float, default=60.0, help="the second run's length (>= the probes)")
    parser.add_argument("--rounds", type=int, default=2, help="each variant this many times, alternating")
    args = parser.parse_args()
    began = time.time()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="status-flood-") as tmp:
        reference = source_tree(args.reference, Path(tmp, "reference"))
        for round_ in range(args.rounds):
            for variant, source in ((f"reference {args.reference}", reference), ("this checkout", REPO)):
                root = Path(tmp, f"{round_}-{len(results)}")
                results.append(run_variant(root, source, args, variant))
                print(f"  {variant}: done", file=sys.stderr)
    print(f"## A run of {args.triggers} reasons of {args.reason_chars} characters, {args.clients} open streams\n")
    print(f"- Command: `python bench/status_flood.py {' '.join(sys.argv[1:])}`")
    print(f"- Date: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(began))} (took {time.time() - began:.0f} s)")
    print(f"- nproc: {os.cpu_count()}; python {sys.version.split()[0]}\n")
    print("| variant | status document | `/health` median ms | p90 | p99 | events/s on one stream |")
    print("|---|---:|---:|---:|---:|---:|")
    for variant in dict.fromkeys(r.variant for r in results):
        mine = [r for r in results if r.variant == variant]
        health = [ms for r in mine for ms in r.health_ms]
        size = statistics.median(r.status_bytes for r in mine)
        rate = statistics.median(r.events_per_second for r in mine)
        print(
            f"| {variant} | {size / 1024:.1f} KiB | {statistics.median(health):.1f} | {pct(health, 0.9):.1f} "
            f"| {pct(health, 0.99):.1f} | {rate:.1f} |"
        )
    ref = [ms for r in results if r.variant.startswith("reference") for ms in r.health_ms]
    new = [ms for r in results if not r.variant.startswith("reference") for ms in r.health_ms]
    for name, q in (("median", 0.5), ("p90", 0.9), ("p99", 0.99)):
        print(f"\n`/health` {name}, this checkout / reference: {pct(new, q) / pct(ref, q):.3f}")


if __name__ == "__main__":
    main()
