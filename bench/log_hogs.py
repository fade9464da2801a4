"""Live log streams that never read, against a real service process (``python -m orchestrator serve``).

The job sleeps 2 s, then prints ``--lines`` lines of 200 bytes as fast as it can (the black-box tester's
``flood2.py``). While it sleeps, ``--clients`` raw clients (SO_RCVBUF 4 KiB) send
``GET /api/snapshot/runs/{id}/log/stream`` and never read a byte. Measured: the run's duration (its record's
``durationSeconds``, the 2 s sleep included) and the worst ``GET /health`` time, polled every 50 ms from the
trigger to the run's end.

    python bench/log_hogs.py [--lines 100000] [--clients 0,100,300]

Prints a Markdown table (for ``bench/RESULTS.md``) on stdout.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.latency import seed_state  # noqa: E402
from tests.support import job_command, start_service  # noqa: E402

JOB = """
import sys, time
time.sleep(2)
w = sys.stdout.buffer
line = b"y" * 200 + b"\\n"
for i in range({lines}):
    w.write(line)
w.flush()
"""


def health_poller(url: str, stop: threading.Event, worst: list[float]) -> None:
    while not stop.is_set():
        began = time.perf_counter()
        with urllib.request.urlopen(url + "/health", timeout=30) as answer:
            answer.read()
        worst[0] = max(worst[0], time.perf_counter() - began)
        stop.wait(0.05)


def one(lines: int, clients: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        seed_state(root / "data")
        # Every hog comes from this one address: without the per-client cap, as if each were another client.
        command = job_command(JOB.format(lines=lines))
        service = start_service(
            root,
            "--command",
            command,
            "--interval",
            "100000",
            "--streams-per-client",
            "0",
            "--connections-per-client",
            "0",
        )
        try:
            service.wait_ready()
            stop, worst = threading.Event(), [0.0]
            poller = threading.Thread(target=health_poller, args=(service.url, stop, worst), daemon=True)
            poller.start()
            service.post_json("/api/snapshot/trigger", {"reason": "bench"})
            run_id = None
            while run_id is None:
                current = service.get_json("/api/snapshot/status").get("currentRun")
                run_id = current and current.get("runId")
            socks = []
            for _ in range(clients):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect(("127.0.0.1", service.port))
                sock.sendall(f"GET /api/snapshot/runs/{run_id}/log/stream HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                socks.append(sock)
            while True:
                try:
                    record = service.get_json(f"/api/snapshot/runs/{run_id}")
                except urllib.error.HTTPError:  # not in the history yet
                    record = {}
                if record.get("finishedAt"):
                    break
                time.sleep(0.1)
            stop.set()
            poller.join()
            size = (service.data_dir / "logs" / f"{run_id}.log").stat().st_size
            for sock in socks:
                sock.close()
            return float(record["durationSeconds"]), worst[0], size
        finally:
            service.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--clients", default="0,100,300")
    args = parser.parse_args()
    print("| never-reading clients | run s (2 s sleep incl.) | worst /health s | log bytes |")
    print("|---:|---:|---:|---:|")
    for clients in (int(c) for c in args.clients.split(",")):
        duration, worst, size = one(args.lines, clients)
        print(f"| {clients} | {duration:.2f} | {worst:.3f} | {size} |", flush=True)


if __name__ == "__main__":
    main()
