"""``<snapshot-bar>`` in another origin's page: how soon it shows the service's state, what it costs in
requests and bytes, and one event stream for N bars. Real Chromium (Playwright, ``/usr/bin/chromium``, the
browser tests' arguments) against a real service process (``python -m orchestrator serve``, seeded idle,
``--command true --interval 100000``, ``--allow-origin`` the host site).

The host site is the browser tests' sample dashboard (tests/web/dashboard, same markup and CSP) served by a
second HTTP server on ``localhost`` (the service listens on 127.0.0.1: another site), at three addresses:

- ``/bar``: the dashboard with one bar (the two lines of the README);
- ``/bars/<N>``: the dashboard with N bars;
- ``/plain``: the reference, the same dashboard without the bar, whose own module script (from the host
  site, where the bar's came from the service) asks the service for the status once with ``fetch``.

Every time is taken inside the page with ``performance.now()``, whose zero is the navigation's start
(``performance.timeOrigin``): a MutationObserver installed before any page script notes when a bar's ``state``
attribute first becomes ``idle`` (its first status document rendered) and the next animation frame after it.
On the way there: when the last of the bar's modules arrived (Resource Timing), and when the page's first
``EventSource`` was created and opened (the constructor wrapped before any page script).

1. First paint, ``--rounds`` rounds, each in fresh browser contexts (cold HTTP cache): the bar page, then
   the same URL again in the same context (warm: the versioned modules come from the cache); and the plain
   page cold and warm, likewise. The order of the two alternates by round. The reference is the plain page's
   ``fetch`` of the status: the least any page must do to show the service's state (one cross-origin request
   to the service, its connection set up, the JSON read), after the same HTML, CSS and host script. The
   plain page's load event is shown too.
2. Requests and bytes, from the DevTools protocol in one extra load (not timed): every response from the
   service's origin, cold and warm, with its transfer size (headers included; the open stream up to its first
   event); and the size of every module of web/ (lines, bytes, gzip -9 each).
3. One stream for N bars (``--bars``): the page with N bars, in a fresh context, until every bar is idle;
   then the service's ``/metrics`` ``snapshot_sse_clients`` must be 1.

    python bench/bar_paint.py [--rounds 15] [--bars 1,5,20]

Prints a Markdown section (for ``bench/RESULTS.md``) on stdout. Exits 1 when N bars open other than one
stream.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # ``tests`` lives in the checkout, not in the installed package

from bench.latency import seed_state  # noqa: E402
from tests.support import ServiceProcess, start_service  # noqa: E402
from tests.web.browsing import CHROMIUM, CHROMIUM_ARGS, VIEWPORT  # noqa: E402
from tests.web.host import DASHBOARD, TYPES, dashboard_html, host_policy  # noqa: E402

WAIT_MS = 30_000
WEB = REPO / "web"
BAR = '<snapshot-bar server="{server}"></snapshot-bar>'

# Runs before any script of the page (Playwright init script: the host's CSP does not apply to it).
OBSERVE = """(() => {
  const b = window.__bench = {
    firstIdle: null, allIdle: null, frame: null, fetched: null, streamCreated: null, streamOpen: null, loaded: false,
  };
  const waiting = [];
  const settle = () => {
    for (const w of [...waiting]) {
      if (b[w.key] !== null && b.loaded) { waiting.splice(waiting.indexOf(w), 1); w.resolve(); }
    }
  };
  // Resolves once b[key] is set and the load event has run: Python waits on this (the host's CSP forbids the
  // eval behind Playwright's wait_for_function).
  b.until = (key, ms) => new Promise((resolve, reject) => {
    waiting.push({ key, resolve });
    settle();
    setTimeout(() => reject(new Error("no " + key + " within " + ms + " ms")), ms);
  });
  b.note = (key) => { b[key] = performance.now(); settle(); };
  addEventListener("load", () => setTimeout(() => { b.loaded = true; settle(); }));
  // The first EventSource of the page: when the bar created it and when it opened (response headers in).
  const Native = window.EventSource;
  window.EventSource = class extends Native {
    constructor(...args) {
      super(...args);
      if (b.streamCreated === null) {
        b.note("streamCreated");
        this.addEventListener("open", () => { if (b.streamOpen === null) b.note("streamOpen"); });
      }
    }
  };
  const seen = new WeakSet();
  new MutationObserver((records) => {
    const now = performance.now();
    for (const { target } of records) {
      if (target.localName !== "snapshot-bar" || target.getAttribute("state") !== "idle" || seen.has(target)) {
        continue;
      }
      seen.add(target);
      if (b.firstIdle === null) {
        b.firstIdle = now;
        requestAnimationFrame(() => b.note("frame"));
      }
      if (b.allIdle === null && [...document.querySelectorAll("snapshot-bar")].every((bar) => seen.has(bar))) {
        b.allIdle = now;
      }
    }
    settle();
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ["state"] });
})();"""
READ = """() => {
  const resources = performance.getEntriesByType("resource").filter((e) => !e.name.startsWith(location.origin));
  const status = resources.find((e) => e.name.endsWith("/api/snapshot/status"));
  return {
    ...window.__bench,
    load: performance.getEntriesByType("navigation")[0].loadEventStart,
    modules: Math.max(0, ...resources.filter((e) => e.name.endsWith(".js")).map((e) => e.responseEnd)),
    fetchSent: status ? status.startTime : null,
  };
}"""


# ------------------------------------------------------------------------------------------------ host site
def reference_module(server: str) -> str:
    return (
        f"const response = await fetch({json.dumps(server + '/api/snapshot/status')}, {{ cache: 'no-store' }});\n"
        "await response.json();\n"
        "window.__bench.note('fetched');\n"
    )


def host_page(path: str, server: str) -> tuple[bytes, str] | None:
    """The host site's answer to ``path``: (body, content type), or None for a 404."""
    entry = f'<script type="module" src="{server}/snapshot-bar.js"></script>'
    if path == "/bar":
        return dashboard_html(server, BAR.format(server=server)).encode(), TYPES[".html"]
    if match := re.fullmatch(r"/bars/(\d+)", path):
        bars = "".join(BAR.format(server=server) for _ in range(int(match.group(1))))
        return dashboard_html(server, bars).encode(), TYPES[".html"]
    if path == "/plain":
        html = dashboard_html(server, "")
        assert entry in html, "the sample dashboard no longer includes the bar as expected"
        return html.replace(entry, '<script type="module" src="/reference.js"></script>').encode(), TYPES[".html"]
    if path == "/reference.js":
        return reference_module(server).encode(), TYPES[".js"]
    file = DASHBOARD / path.lstrip("/")
    if path.count("/") == 1 and file.is_file():
        return file.read_bytes(), TYPES.get(file.suffix, "application/octet-stream")
    return None


@contextmanager
def host_site(server: list[str]) -> Iterator[str]:
    """The host site on ``localhost``; yields its origin. ``server[0]``: the service's URL, set once known."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer = host_page(self.path.split("?", 1)[0], server[0])
            if answer is None:
                self.send_error(404)
                return
            body, kind = answer
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", host_policy(server[0]))
            self.send_header("Cache-Control", "no-store")  # as tests/web/host.py: only the bar's files cache
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------- measuring
def new_context(browser: Browser) -> BrowserContext:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(OBSERVE)
    return context


def load(page: Page, url: str, until: str) -> dict[str, float]:
    """Navigate to ``url`` and wait (bounded) until ``window.__bench`` has ``until`` and the load event ran."""
    page.goto(url)
    page.evaluate("([key, ms]) => window.__bench.until(key, ms)", [until, WAIT_MS])
    result: dict[str, float] = page.evaluate(READ)
    return result


@dataclass
class Timings:
    """Milliseconds from navigation start, one value per round."""

    bar_idle: dict[str, list[float]] = field(default_factory=lambda: {"cold": [], "warm": []})
    bar_frame: dict[str, list[float]] = field(default_factory=lambda: {"cold": [], "warm": []})
    bar_load: dict[str, list[float]] = field(default_factory=lambda: {"cold": [], "warm": []})
    bar_modules: dict[str, list[float]] = field(default_factory=lambda: {"cold": [], "warm": []})
    stream_created: dict[str, list[float]] = field(default_factory=lambda: {"cold": [], "warm": []})
    stream_open: dict[str, list[float]] = field(default_factory=lambda: {"cold": [], "warm": []})
    fetch_sent: dict[str, list[float]] = field(default_factory=lambda: {"cold": [], "warm": []})
    fetched: dict[str, list[float]] = field(default_factory=lambda: {"cold": [], "warm": []})
    plain_load: dict[str, list[float]] = field(default_factory=lambda: {"cold": [], "warm": []})


def bar_round(browser: Browser, origin: str, into: Timings | None) -> None:
    context = new_context(browser)
    try:
        page = context.new_page()
        for cache in ("cold", "warm"):
            got = load(page, origin + "/bar", "frame")
            if into is not None:
                into.bar_idle[cache].append(got["firstIdle"])
                into.bar_frame[cache].append(got["frame"])
                into.bar_load[cache].append(got["load"])
                into.bar_modules[cache].append(got["modules"])
                into.stream_created[cache].append(got["streamCreated"])
                into.stream_open[cache].append(got["streamOpen"])
    finally:
        context.close()


def plain_round(browser: Browser, origin: str, into: Timings | None) -> None:
    context = new_context(browser)
    try:
        page = context.new_page()
        for cache in ("cold", "warm"):
            got = load(page, origin + "/plain", "fetched")
            if into is not None:
                into.fetched[cache].append(got["fetched"])
                into.plain_load[cache].append(got["load"])
                into.fetch_sent[cache].append(got["fetchSent"])
    finally:
        context.close()


@dataclass(frozen=True)
class Response:
    """One response from the service's origin in one load; times in ms from navigation start (None: not in
    the page's Resource Timing, as the stream while it is open)."""

    path: str
    status: int
    cached: bool
    size: int
    """Bytes over the network, headers included; the open stream's up to its first event."""
    requested: float | None
    received: float | None

    @property
    def shown(self) -> str:
        return re.sub(r"/v/[0-9a-f]+/", "/v/<version>/", self.path)


@dataclass(frozen=True)
class Transfer:
    """What one load of the bar page took from the service's origin, and when its bar became idle."""

    responses: list[Response]
    idle: float

    @property
    def from_network(self) -> list[Response]:
        return [r for r in self.responses if not r.cached]


TIMELINE = """() => Object.fromEntries(performance.getEntriesByType("resource")
  .map((e) => [e.name, [e.startTime, e.responseEnd]]))"""


def account(browser: Browser, origin: str, server: str) -> tuple[Transfer, Transfer]:
    """One cold and one warm load of the bar page, every response from ``server`` counted (DevTools protocol)."""
    context = new_context(browser)
    try:
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        seen: dict[str, dict[str, Any]] = {}
        served_from_cache: set[str] = set()

        def response(e: dict[str, Any]) -> None:
            r = e["response"]
            if r["url"].startswith(server):
                cached = e["requestId"] in served_from_cache or bool(r.get("fromDiskCache"))
                seen[e["requestId"]] = {"url": r["url"], "status": r["status"], "cached": cached, "bytes": 0}
                seen[e["requestId"]]["head"] = r.get("encodedDataLength", 0)

        def data(e: dict[str, Any]) -> None:
            if e["requestId"] in seen:
                seen[e["requestId"]]["bytes"] += e["encodedDataLength"]

        def finished(e: dict[str, Any]) -> None:
            if e["requestId"] in seen:
                seen[e["requestId"]]["total"] = e["encodedDataLength"]

        def from_memory(e: dict[str, Any]) -> None:
            served_from_cache.add(e["requestId"])  # sent before its responseReceived

        cdp.on("Network.responseReceived", response)
        cdp.on("Network.dataReceived", data)
        cdp.on("Network.loadingFinished", finished)
        cdp.on("Network.requestServedFromCache", from_memory)
        cdp.send("Network.enable")
        loads = []
        for _ in ("cold", "warm"):
            seen.clear()
            got = load(page, origin + "/bar", "frame")
            # The DevTools events reach this process on their own channel: wait (bounded) for the stream's data.
            deadline = time.monotonic() + WAIT_MS / 1000
            while not any("/events" in s["url"] and s["bytes"] for s in seen.values()):
                if time.monotonic() > deadline:
                    raise SystemExit("the DevTools protocol never reported the stream's first event")
                page.wait_for_timeout(20)
            timeline: dict[str, list[float]] = page.evaluate(TIMELINE)
            responses = []
            for r in seen.values():
                requested, received = timeline.get(r["url"], (None, None))
                size = 0 if r["cached"] else r.get("total", r["head"] + r["bytes"])
                path = r["url"][len(server) :]
                responses.append(Response(path, r["status"], r["cached"], size, requested, received))
            responses.sort(key=lambda r: (r.requested is None, r.requested or 0.0))
            loads.append(Transfer(responses, got["firstIdle"]))
    finally:
        context.close()
    return loads[0], loads[1]


def sse_clients(server: str) -> int:
    with urllib.request.urlopen(server + "/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(r"^snapshot_sse_clients (\d+(?:\.\d+)?)$", text, re.MULTILINE)
    if match is None:
        raise SystemExit("/metrics has no snapshot_sse_clients")
    return int(float(match.group(1)))


def until_no_streams(server: str) -> None:
    """The streams of closed contexts are gone on the server (it notices a closed connection on its own)."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while sse_clients(server) != 0:
        if time.monotonic() > deadline:
            raise SystemExit("the service still counts open streams from closed pages")
        time.sleep(0.05)


def many_bars(browser: Browser, origin: str, server: str, n: int) -> tuple[int, float]:
    """(streams the service counts, ms until every bar is idle) for a page with ``n`` bars, cold."""
    until_no_streams(server)
    context = new_context(browser)
    try:
        page = context.new_page()
        got = load(page, f"{origin}/bars/{n}", "allIdle")
        return sse_clients(server), got["allIdle"]
    finally:
        context.close()


# --------------------------------------------------------------------------------------------- reporting
@dataclass(frozen=True)
class Module:
    path: str
    lines: int
    size: int
    gzipped: int


def modules() -> list[Module]:
    found = []
    for path in sorted([*WEB.glob("*.js"), *WEB.glob("lib/*.js")]):
        data = path.read_bytes()
        rel = path.relative_to(WEB).as_posix()
        found.append(Module(rel, data.count(b"\n"), len(data), len(gzip.compress(data, compresslevel=9))))
    return found


def ms(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}"


def spread(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"


def paint_table(t: Timings) -> list[str]:
    rows = [
        "| cache | bar: modules in | stream created | stream open | **bar idle** | next frame "
        "| bar page's load event | reference: fetch sent | **reference: status fetched** | reference's load event "
        "| **bar idle / fetched** | bar idle / reference load | bar idle / fetched, median of the rounds' |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cache in ("cold", "warm"):
        idle, fetched, plain = t.bar_idle[cache], t.fetched[cache], t.plain_load[cache]
        rows.append(
            f"| {cache} | {ms(t.bar_modules[cache])} | {ms(t.stream_created[cache])} | {ms(t.stream_open[cache])} "
            f"| {ms(idle)} ({spread(idle)}) | {ms(t.bar_frame[cache])} | {ms(t.bar_load[cache])} "
            f"| {ms(t.fetch_sent[cache])} | {ms(fetched)} ({spread(fetched)}) | {ms(plain)} "
            f"| **{statistics.median(idle) / statistics.median(fetched):.2f}** "
            f"| {statistics.median(idle) / statistics.median(plain):.2f} "
            f"| {statistics.median(a / b for a, b in zip(idle, fetched, strict=True)):.2f} |"
        )
    return rows


def at(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def transfer_lines(cold: Transfer, warm: Transfer, found: list[Module]) -> list[str]:
    rows = ["| load | requests to the service | from the network | from the cache | bytes over the network |"]
    rows.append("|---|---:|---:|---:|---:|")
    for name, t in (("cold", cold), ("warm", warm)):
        net = t.from_network
        rows.append(
            f"| {name} | {len(t.responses)} | {len(net)} | {len(t.responses) - len(net)} "
            f"| {sum(r.size for r in net):,} |"
        )
    for name, t in (("Cold load", cold), ("Warm load (second navigation, same context)", warm)):
        rows += ["", f"{name}, every response from the service (bar idle at {t.idle:.1f} ms):", ""]
        rows += ["| path | status | from the cache | bytes | requested (ms) | received (ms) |"]
        rows += ["|---|---:|---|---:|---:|---:|"]
        rows += [
            f"| `{r.shown}` | {r.status} | {'yes' if r.cached else 'no'} | {r.size:,} | {at(r.requested)} "
            f"| {at(r.received)} |"
            for r in t.responses
        ]
    loaded = {re.sub(r"^/v/[0-9a-f]+/", "", r.path) for r in cold.responses}
    rows += ["", "Modules of web/ (gzip -9 of each file alone; *bar*: loaded by the bar page):", ""]
    rows += ["| module | lines | bytes | gzip | bar |", "|---|---:|---:|---:|---|"]
    rows += [
        f"| `{m.path}` | {m.lines} | {m.size:,} | {m.gzipped:,} | {'bar' if m.path in loaded else ''} |" for m in found
    ]
    mine = [m for m in found if m.path in loaded]
    for label, group in (("all of web/", found), ("the bar's modules", mine)):
        rows.append(
            f"| **{label}** ({len(group)} files) | {sum(m.lines for m in group):,} | {sum(m.size for m in group):,} "
            f"| {sum(m.gzipped for m in group):,} | |"
        )
    return rows


# -------------------------------------------------------------------------------------------------- main
Streams = list[tuple[int, int, float]]
"""Per page of N bars: (N, streams the service counted, ms until all were idle)."""


def measure(
    browser: Browser, origin: str, server: str, args: argparse.Namespace
) -> tuple[Timings, tuple[Transfer, Transfer], Streams]:
    for _ in range(args.warmup):
        bar_round(browser, origin, None)
        plain_round(browser, origin, None)
    timings = Timings()
    for round_ in range(args.rounds):
        pair = (bar_round, plain_round) if round_ % 2 == 0 else (plain_round, bar_round)
        for run in pair:
            run(browser, origin, timings)
        print(f"  round {round_ + 1}/{args.rounds}", file=sys.stderr)
    cold, warm = account(browser, origin, server)
    streams = [(n, *many_bars(browser, origin, server, n)) for n in args.bars]
    return timings, (cold, warm), streams


def report(
    args: argparse.Namespace, began: float, timings: Timings, transfer: tuple[Transfer, Transfer], streams: Streams
) -> None:
    print("## First paint of `<snapshot-bar>` on another origin (`bench/bar_paint.py`)\n")
    print(f"- Command: `{' '.join(['python', 'bench/bar_paint.py', *sys.argv[1:]])}`")
    print(f"- Date: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(began))} (took {time.time() - began:.0f} s)")
    load_avg = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"- nproc: {os.cpu_count()}; python {sys.version.split()[0]}; {args.chromium}; load average {load_avg}\n")
    print(f"### 1. Time from navigation start, ms: median (min-max) of {args.rounds} rounds\n")
    print("\n".join(paint_table(timings)))
    print("\n### 2. Requests and bytes the bar costs\n")
    print("\n".join(transfer_lines(transfer[0], transfer[1], modules())))
    print("\n### 3. One stream for N bars (a fresh context per N)\n")
    print("| bars | `snapshot_sse_clients` | all idle (ms, cold) |")
    print("|---:|---:|---:|")
    for n, clients, idle in streams:
        print(f"| {n} | {clients} | {idle:.1f} |")


def sizes(text: str) -> list[int]:
    values = [int(v) for v in text.split(",")]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"want a list of positive counts, got {text!r}")
    return values


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=positive, default=15, help="timed rounds (default 15)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds before them (default 1)")
    parser.add_argument("--bars", type=sizes, default=[1, 5, 20], help="bars per page for part 3 (default 1,5,20)")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing (apt-get install chromium)")
    began = time.time()
    server: list[str] = [""]
    with tempfile.TemporaryDirectory(prefix="bar-paint-") as tmp, host_site(server) as origin:
        root = Path(tmp)
        seed_state(root / "data")
        service: ServiceProcess = start_service(
            root, "--command", "true", "--interval", "100000", "--allow-origin", origin
        )
        try:
            service.wait_ready()
            server[0] = service.url
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
                args.chromium = f"Chromium {browser.version}"
                try:
                    timings, transfer, streams = measure(browser, origin, service.url, args)
                finally:
                    browser.close()
        finally:
            service.stop()
    report(args, began, timings, transfer, streams)
    return 0 if all(clients == 1 for _, clients, _ in streams) else 1


if __name__ == "__main__":
    raise SystemExit(main())
