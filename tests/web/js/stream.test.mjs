// web/lib/stream.js: one event stream per service for every element of any job, its documents handed to each
// job's elements, and the stream of each job for a service without one of every job. EventSource and fetch are
// fakes the test drives: each test uses a server of its own (the page's registry of streams is global).

import { afterEach, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";

import { ALL_JOBS, subscribe } from "../../../web/lib/stream.js";
import { tokens } from "../../../web/lib/token.js";

const sources = []; // every FakeEventSource made, in order

class FakeEventSource extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.closed = false;
    sources.push(this);
  }

  get path() { return new URL(this.url).pathname + new URL(this.url).search; }
  close() { this.closed = true; }
  open() { this.dispatchEvent(new Event("open")); }
  fail() { this.dispatchEvent(new Event("error")); }

  send(document) {
    const event = new Event("status");
    event.data = typeof document === "string" ? document : JSON.stringify(document);
    this.dispatchEvent(event);
  }
}

let answers; // path -> [status, body]: what the fake fetch answers
let asked; // [method, path, authorization] of every request

async function fakeFetch(url, init = {}) {
  const parsed = new URL(url);
  const path = parsed.pathname;
  asked.push([init.method || "GET", path, init.headers?.Authorization ?? null]);
  const answer = answers[path] ?? [404, { message: "no such path" }];
  if (answer === "unanswered") throw new TypeError("Failed to fetch"); // no answer, or none this origin may read
  const [status, body] = answer;
  return new Response(body === undefined ? "" : JSON.stringify(body), { status });
}

/** Let the stream's first connection start (it waits for the next task), then every pending promise of it run
(a request, its answer, the stream opened after it). */
async function settle() {
  await new Promise((resolve) => setTimeout(resolve, 2));
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

const doc = (job, fields = {}) => ({ job, running: false, serverTime: "2026-03-01T12:00:00.000Z", ...fields });
const JOBS = { jobs: [doc("snapshot"), doc("report"), doc("backup")], defaultJob: "snapshot" };

/** A subscriber that records what it is told: `seen` lists [kind, job of its feed's document, state]. */
function recorder() {
  const r = { seen: [], feed: null };
  r.listener = (kind, feed) => {
    r.feed = feed;
    r.seen.push([kind, feed.doc ? feed.doc.job : null, feed.state]);
  };
  r.docs = () => r.seen.filter(([kind]) => kind === "status").map(([, job]) => job);
  return r;
}

let stops;
let serverCount = 0;
let server;

function follow(job) {
  const r = recorder();
  stops.push(subscribe(server, job, r.listener));
  return r;
}

beforeEach(() => {
  sources.length = 0;
  asked = [];
  stops = [];
  answers = { "/api/jobs": [200, JOBS] };
  server = "http://service-" + ++serverCount + ".test";
  globalThis.EventSource = FakeEventSource;
  globalThis.fetch = fakeFetch;
});

afterEach(() => {
  for (const stop of stops) stop();
  tokens.forget(server, null);
});

describe("one stream for every job of a service", () => {
  it("asks for the jobs first, then opens /api/events once for the elements of every job", async () => {
    const bar = follow(null);
    const report = follow("report");
    const list = follow(ALL_JOBS);
    const history = follow(null); // a second element of the default job
    await settle();
    assert.deepEqual(asked, [["GET", "/api/jobs", null]]);
    assert.deepEqual(sources.map((s) => s.path), ["/api/events"]);
    // The list of jobs is known; the one job's feeds are told (their list of jobs changed), with nothing to show.
    assert.deepEqual(list.seen, [["jobs", null, "connecting"]]);
    assert.deepEqual(bar.seen, [["state", null, "connecting"]]);
    assert.deepEqual(bar.feed.jobs.jobs, ["snapshot", "report", "backup"]);
    sources[0].open();
    for (const name of ["snapshot", "report", "backup"]) sources[0].send(doc(name));
    assert.deepEqual(bar.docs(), ["snapshot"]);
    assert.deepEqual(history.docs(), ["snapshot"]);
    assert.deepEqual(report.docs(), ["report"]);
    assert.deepEqual(list.docs(), ["snapshot", "report", "backup"]);
    assert.deepEqual([...list.feed.docs.keys()], ["snapshot", "report", "backup"]);
    assert.deepEqual(list.feed.jobs, { defaultJob: "snapshot", jobs: ["snapshot", "report", "backup"], several: true });
    assert.equal(bar.feed.clock, report.feed.clock); // one connection: one server clock
    assert.equal(sources.length, 1);
  });

  it("hands the default job's documents to the elements without a job, whatever its name", async () => {
    answers["/api/jobs"] = [200, { jobs: [doc("a"), doc("b")], defaultJob: "b" }];
    const bar = follow(null);
    const a = follow("a");
    const b = follow("b");
    await settle();
    sources[0].open();
    sources[0].send(doc("a", { n: 1 }));
    sources[0].send(doc("b", { n: 2 }));
    assert.deepEqual(bar.docs(), ["b"]);
    assert.deepEqual(a.docs(), ["a"]);
    assert.deepEqual(b.docs(), ["b"]);
  });

  it("an element that comes later starts from its job's latest document", async () => {
    follow(null);
    await settle();
    sources[0].open();
    sources[0].send(doc("backup", { n: 1 }));
    sources[0].send(doc("snapshot"));
    sources[0].send(doc("backup", { n: 2 }));
    const backup = follow("backup");
    assert.deepEqual(backup.seen, [["status", "backup", "open"]]);
    assert.equal(backup.feed.doc.n, 2);
    const list = follow(ALL_JOBS);
    assert.deepEqual([...list.feed.docs.keys()].sort(), ["backup", "snapshot"]);
    assert.equal(list.feed.doc.job, "backup"); // the latest of all
    assert.equal(sources.length, 1);
    assert.equal(asked.length, 1);
  });

  it("a garbled event, or one that is no object, changes nothing", async () => {
    const bar = follow(null);
    await settle();
    sources[0].open();
    sources[0].send("not json {");
    sources[0].send("[1, 2]");
    sources[0].send(doc("snapshot"));
    assert.deepEqual(bar.docs(), ["snapshot"]);
  });

  it("a job the service does not have is missing, until it shows up on the stream (a reload added it)", async () => {
    const nightly = follow("nightly");
    const list = follow(ALL_JOBS);
    await settle();
    sources[0].open();
    assert.equal(nightly.feed.state, "missing");
    sources[0].send(doc("nightly"));
    assert.equal(nightly.feed.state, "open");
    assert.deepEqual(nightly.docs(), ["nightly"]);
    assert.deepEqual(list.feed.jobs.jobs, ["snapshot", "report", "backup", "nightly"]);
    assert.ok(list.seen.some(([kind]) => kind === "jobs"));
  });

  it("the last element to leave closes the stream; the next one opens a new one", async () => {
    const stopBar = subscribe(server, null, () => {});
    const stopReport = subscribe(server, "report", () => {});
    await settle();
    stopBar();
    assert.equal(sources[0].closed, false);
    stopReport();
    assert.equal(sources[0].closed, true);
    follow(null);
    await settle();
    assert.equal(sources.length, 2);
    assert.equal(sources[1].closed, false);
  });

  it("a token handed over right after the elements came is carried by the first request", async () => {
    follow(null);
    tokens.set(server, "late-token", { persist: false }); // as a host page's `bar.token = ...`
    await settle();
    assert.deepEqual(asked[0], ["GET", "/api/jobs", "Bearer late-token"]);
  });

  it("with a token: the jobs are read with it and the stream opened with a ticket", async () => {
    tokens.set(server, "secret-token", { persist: false });
    answers["/api/stream-ticket"] = [200, { ticket: "tkt-1" }];
    follow(null);
    await settle();
    assert.deepEqual(asked, [
      ["GET", "/api/jobs", "Bearer secret-token"],
      ["POST", "/api/stream-ticket", "Bearer secret-token"],
    ]);
    assert.deepEqual(sources.map((s) => s.path), ["/api/events?ticket=tkt-1"]);
  });

  it("a service that wants a token for reads: every element asks for it, no stream is opened", async () => {
    answers["/api/jobs"] = [401, { message: "token needed" }];
    const bar = follow(null);
    const report = follow("report");
    await settle();
    assert.equal(sources.length, 0);
    assert.equal(bar.feed.state, "unauthorized");
    assert.equal(report.feed.state, "unauthorized");
    assert.equal(bar.feed.tokenRefused, false);
  });
});

describe("a service from before several jobs", () => {
  beforeEach(() => {
    answers = { "/api/jobs": [404, { message: "no such path" }], "/api/snapshot/status": [200, doc(undefined)] };
  });

  it("GET /api/jobs answers 404: each job shown gets its own stream, as such a service has", async () => {
    const bar = follow(null);
    const chart = follow(null);
    const list = follow(ALL_JOBS);
    const nightly = follow("nightly");
    await settle();
    assert.deepEqual(sources.map((s) => s.path).sort(), ["/api/jobs/nightly/events", "/api/snapshot/events"]);
    const own = sources.find((s) => s.path === "/api/snapshot/events");
    own.open();
    own.send({ running: false });
    assert.equal(bar.docs().length, 1);
    assert.equal(chart.docs().length, 1);
    assert.equal(list.docs().length, 1); // the one job is every job
    assert.deepEqual(list.feed.jobs, { defaultJob: null, jobs: [], several: false });
    assert.equal(nightly.docs().length, 0);
  });

  it("a job's own stream that fails asks its status why: an unknown job is missing", async () => {
    const nightly = follow("nightly");
    await settle();
    sources.find((s) => s.path === "/api/jobs/nightly/events").fail();
    await settle();
    assert.equal(nightly.feed.state, "missing");
    assert.ok(asked.some(([, path]) => path === "/api/jobs/nightly/status"));
  });

  it("a service replaced by an older one while the page is open: the stream breaks, and each job gets its own",
    async () => {
      answers["/api/jobs"] = [200, JOBS];
      const bar = follow(null);
      await settle();
      assert.deepEqual(sources.map((s) => s.path), ["/api/events"]);
      answers["/api/jobs"] = [404, { message: "no such path" }];
      sources[0].fail();
      await settle();
      assert.equal(sources[0].closed, true);
      assert.deepEqual(sources.map((s) => s.path), ["/api/events", "/api/snapshot/events"]);
      sources[1].open();
      sources[1].send({ running: true });
      assert.equal(bar.feed.doc.running, true);
      assert.equal(bar.feed.state, "open");
    });

  it("from another origin with a token, an older service answers no preflight for /api/jobs: it is read as such",
    async () => {
      answers["/api/jobs"] = "unanswered";
      const bar = follow(null);
      await settle();
      assert.deepEqual(asked.map(([, path]) => path), ["/api/jobs", "/api/snapshot/status", "/api/jobs"]);
      assert.deepEqual(sources.map((s) => s.path), ["/api/snapshot/events"]);
      sources[0].open();
      assert.equal(bar.feed.state, "open");
    });

  const silent = [
    // [name, what /health answers, state]
    ["a service that answers nothing at all is offline", "unanswered", "offline"],
    ["one that answers, but to none of this origin's reads, refuses it", [200, { status: "ok" }], "refused"],
  ];
  for (const [name, health, state] of silent) {
    it(`${name}, not an older one`, async () => {
      answers = { "/api/jobs": "unanswered", "/api/snapshot/status": "unanswered", "/health": health };
      const bar = follow(null);
      await settle();
      assert.equal(sources.length, 0);
      assert.equal(bar.feed.state, state);
    });
  }

  it("the last element of a job closes that job's own stream only", async () => {
    const stopBar = subscribe(server, null, () => {});
    const stopNightly = subscribe(server, "nightly", () => {});
    await settle();
    stopNightly();
    const states = Object.fromEntries(sources.map((s) => [s.path, s.closed]));
    assert.deepEqual(states, { "/api/jobs/nightly/events": true, "/api/snapshot/events": false });
    stopBar();
    assert.ok(sources.every((s) => s.closed));
  });
});
