// web/lib/bar-view.js: what the bar shows for a status document and the stream's state, as tables.
// Times are explicit epoch ms; the clock and date parts are in the reader's locale and time zone, so they are
// compared with format.js's own rendering rather than with literal strings.

import { describe, it } from "node:test";
import assert from "node:assert/strict";

import {
  barModel, detailModel, etaBasisText, lastModel, offlineText, runChanges,
} from "../../../web/lib/bar-view.js";
import { localClock, localDateTime } from "../../../web/lib/format.js";

const T = Date.parse("2026-03-01T12:00:00Z");
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const iso = (ms) => new Date(ms).toISOString();
const STEP = "Fetching GitHub PRs (5/15 repos)";
const NO_CHECKS = { line: "", title: "" };
const NO_LAST = { outcome: "none", label: null, parts: [], error: null, title: null, empty: false };
const CONNECTING = "Connecting to the snapshot service…";
const UNREACHABLE = "Snapshot service unreachable — reconnecting…";
const TOKEN = "Enter the service's token to see snapshots";
const REFUSED = "This page's origin may not read the snapshot service (see --allow-origin)";
const RUNNING = "Snapshot: Running...";

/** The last run's model: `fields` over one with no parts, error or title. */
function record(outcome, label, fields = {}) {
  return { outcome, label, parts: [], error: null, title: null, ...fields };
}

/** The context of an open stream at server time T with nothing to count down; `extra` overrides. */
function ctx(extra = {}) {
  return { state: "open", everFailed: false, job: "snapshot", now: T, remaining: null, etaLeft: null, ...extra };
}

/** The model of a bar that shows no document (offline, or connected before the first document). */
function offlineModel(status, last = NO_LAST) {
  return {
    mode: "offline",
    connected: false,
    status,
    statusTitle: null,
    progress: null,
    eta: null,
    queued: false,
    waiting: false,
    paused: false,
    pauseKnown: false,
    pausedChip: "automatic snapshots paused",
    pausedChipTitle: null,
    stopping: null,
    checks: NO_CHECKS,
    last,
  };
}

describe("the local time texts the rows compare with", () => {
  // Rows compare clock and date parts with format.js's rendering: that must be real text, or they prove little.
  it("renders a clock time and a date", () => {
    for (const value of [localClock(T), localDateTime(T)]) {
      assert.notEqual(value, "");
      assert.notEqual(value, "Invalid Date");
    }
  });
});

describe("offlineText", () => {
  const rows = [
    // [state, everFailed, expected]
    ["unauthorized", false, TOKEN],
    ["unauthorized", true, TOKEN],
    ["refused", false, REFUSED],
    ["refused", true, REFUSED],
    ["missing", false, "The snapshot service has no job named nightly"],
    ["missing", true, "The snapshot service has no job named nightly"],
    ["offline", true, UNREACHABLE],
    ["offline", false, CONNECTING],
    ["connecting", false, CONNECTING],
    ["connecting", true, UNREACHABLE],
    ["open", false, CONNECTING], // open, but no document yet
    [undefined, false, CONNECTING],
    ["constructor", true, UNREACHABLE],
  ];
  for (const [state, everFailed, expected] of rows) {
    it(`${state} (everFailed ${everFailed}) → ${expected}`, () => {
      assert.equal(offlineText(state, everFailed, "nightly"), expected);
    });
  }
});

describe("barModel offline", () => {
  const idle = { running: false, queued: true, paused: { reason: "x" }, checks: [{ kind: "late", message: "m" }] };
  const rows = [
    // [name, doc, ctx, expected status]
    ["connecting, no document", null, { state: "connecting" }, CONNECTING],
    ["offline after a failure", null, { state: "offline", everFailed: true }, UNREACHABLE],
    ["unauthorized", null, { state: "unauthorized" }, TOKEN],
    ["refused", null, { state: "refused" }, REFUSED],
    ["missing", null, { state: "missing", job: "nightly" }, "The snapshot service has no job named nightly"],
    ["open without a document yet", null, { state: "open" }, CONNECTING],
    // The last document stays in the stream when it drops: it must not make the bar look connected.
    ["offline with an old document", idle, { state: "offline", everFailed: true }, UNREACHABLE],
    ["unauthorized with an old document", idle, { state: "unauthorized" }, TOKEN],
  ];
  for (const [name, doc, extra, status] of rows) {
    it(name, () => {
      const last = doc === null ? NO_LAST : { ...NO_LAST, empty: true };
      assert.deepEqual(barModel(doc, ctx(extra)), offlineModel(status, last));
    });
  }
});

describe("barModel idle countdown", () => {
  const doc = { running: false, nextRunAt: iso(T + 5 * MINUTE), intervalMinutes: 5 };
  const title = "Next automatic snapshot at " + localClock(T + 5 * MINUTE) + " (every 5 minutes)";
  const rows = [
    // [remaining ms, expected status]
    [null, "Waiting for the next snapshot"],
    [-2 * SECOND, "Next snapshot starting…"],
    [0, "Next snapshot starting…"],
    [30 * SECOND, "Next snapshot in less than a minute"],
    [5 * MINUTE, "Next snapshot in 5 minutes"],
  ];
  for (const [remaining, status] of rows) {
    it(`${remaining} ms left → ${status}`, () => {
      const model = barModel(doc, ctx({ remaining }));
      assert.equal(model.mode, "idle");
      assert.equal(model.connected, true);
      assert.equal(model.status, status);
      assert.equal(model.statusTitle, title);
      assert.equal(model.progress, null);
      assert.equal(model.eta, null);
      assert.equal(model.stopping, null);
    });
  }

  const dueAt = "Next automatic snapshot at " + localClock(T + MINUTE);
  const titles = [
    // [name, doc fields, expected title]
    ["due time and interval", { nextRunAt: iso(T + MINUTE), intervalMinutes: 1 }, dueAt + " (every 1 minute)"],
    ["due time only", { nextRunAt: iso(T + MINUTE) }, dueAt],
    ["interval only", { intervalMinutes: 30 }, "(every 30 minutes)"],
    ["neither", {}, null],
    ["fields of the wrong type", { nextRunAt: T, intervalMinutes: "5" }, null],
    ["a due time that is no time", { nextRunAt: "soon", intervalMinutes: 2 }, "(every 2 minutes)"],
  ];
  for (const [name, fields, expected] of titles) {
    it(`title: ${name}`, () => {
      assert.equal(barModel({ running: false, ...fields }, ctx({ remaining: MINUTE })).statusTitle, expected);
    });
  }
});

describe("barModel paused", () => {
  const OFF = "Paused — automatic snapshots off";
  const paused = { reason: "maintenance", since: iso(T - 10 * MINUTE) };
  const title = "Paused since " + localDateTime(T - 10 * MINUTE) + ": maintenance";
  const rows = [
    // [name, paused, expected line, expected title]
    ["with reason and since", paused, OFF + " (maintenance)", title],
    ["with a reason only", { reason: "disk full" }, OFF + " (disk full)", "Paused: disk full"],
    ["with since only", { since: iso(T) }, OFF, "Paused since " + localDateTime(T)],
    ["bare", {}, OFF, "Paused"],
  ];
  for (const [name, value, line, expectedTitle] of rows) {
    it(`idle, ${name}: the line says paused, not the countdown`, () => {
      const doc = { running: false, paused: value, nextRunAt: iso(T + MINUTE), intervalMinutes: 5 };
      const model = barModel(doc, ctx({ remaining: MINUTE }));
      assert.equal(model.mode, "idle");
      assert.equal(model.paused, true);
      assert.equal(model.pauseKnown, true);
      assert.equal(model.status, line);
      assert.equal(model.statusTitle, expectedTitle);
      assert.equal(model.pausedChipTitle, expectedTitle);
    });
  }

  it("running while paused: the run's line, the pause in the chip's title", () => {
    const model = barModel({ running: true, paused, progress: { progress: 10 } }, ctx());
    assert.equal(model.mode, "running");
    assert.equal(model.paused, true);
    assert.equal(model.status, RUNNING);
    assert.equal(model.statusTitle, null);
    assert.equal(model.pausedChipTitle, title);
    assert.equal(model.progress.percent, 10);
  });

  const known = [
    // [name, doc, paused, pauseKnown]: a service too old to say "paused" leaves the pause control unknown
    ["no paused field", { running: false }, false, false],
    ["paused: null", { running: false, paused: null }, false, true],
    ["paused: an object", { running: false, paused: {} }, true, true],
    ["paused: true (not an object)", { running: false, paused: true }, false, true],
    ["paused: an array", { running: false, paused: ["maintenance"] }, false, true],
    ["paused: a string", { running: false, paused: "maintenance" }, false, true],
  ];
  for (const [name, doc, isPaused, pauseKnown] of known) {
    it(`pauseKnown: ${name}`, () => {
      const model = barModel(doc, ctx());
      assert.equal(model.paused, isPaused);
      assert.equal(model.pauseKnown, pauseKnown);
      assert.equal(model.pausedChipTitle, isPaused ? "Paused" : null);
    });
  }
  it("pauseKnown is false while offline, even with a document that has paused", () => {
    const model = barModel({ running: false, paused: {} }, ctx({ state: "offline" }));
    assert.equal(model.paused, false);
    assert.equal(model.pauseKnown, false);
  });
});

describe("barModel running", () => {
  const rows = [
    // [name, progress, percent, valueNow, valueText, percentText, step]
    ["45 % with a step", { progress: 45, step: STEP }, 45, "45", "45 %, " + STEP, "45%", STEP],
    ["0 %", { progress: 0, step: "Starting" }, 0, "0", "0 %, Starting", "0%", "Starting"],
    ["100 %", { progress: 100, step: "Done" }, 100, "100", "100 %, Done", "100%", "Done"],
    ["below 0 is clamped", { progress: -4, step: STEP }, 0, "0", "0 %, " + STEP, "0%", STEP],
    ["above 100 is clamped", { progress: 140 }, 100, "100", "100 %", "100%", ""],
    ["a third", { progress: 33.333 }, 33.333, "33.3", "33.3 %", "33%", ""],
    ["two thirds", { progress: 66.66 }, 66.66, "66.7", "66.7 %", "67%", ""],
    ["no percent yet", { step: "Queued work" }, 0, "0", "0 %, Queued work", "0%", "Queued work"],
    ["a percent as a string", { progress: "45", step: STEP }, 0, "0", "0 %, " + STEP, "0%", STEP],
    ["a step that is no string", { progress: 45, step: { text: STEP } }, 45, "45", "45 %", "45%", ""],
    ["no progress at all", undefined, 0, "0", "0 %", "0%", ""],
    ["progress: null", null, 0, "0", "0 %", "0%", ""],
    ["progress: an array", [45, STEP], 0, "0", "0 %", "0%", ""],
  ];
  for (const [name, progress, percent, valueNow, valueText, percentText, step] of rows) {
    it(name, () => {
      const doc = { running: true, currentRun: { runId: "r2" } };
      if (progress !== undefined) doc.progress = progress;
      const model = barModel(doc, ctx({ remaining: 5 * MINUTE }));
      assert.equal(model.mode, "running");
      assert.equal(model.connected, true);
      assert.equal(model.status, RUNNING);
      assert.equal(model.statusTitle, null);
      assert.equal(model.stopping, null);
      assert.deepEqual(model.progress, { percent, valueNow, valueText, percentText, step });
    });
  }
});

describe("barModel stopping", () => {
  const rows = [
    // [stopping, expected stopping, expected status]
    ["", "", "Stopping…"],
    ["cancelled by alice", "cancelled by alice", "Stopping… (cancelled by alice)"],
    // Only a string means stopping: anything else is a running run.
    [true, null, RUNNING],
    [null, null, RUNNING],
    [{ reason: "x" }, null, RUNNING],
  ];
  for (const [stopping, expected, status] of rows) {
    it(`stopping ${JSON.stringify(stopping)} → ${status}`, () => {
      const doc = { running: true, stopping, progress: { progress: 45, step: STEP }, eta: { basis: "progress" } };
      const model = barModel(doc, ctx({ etaLeft: 120 }));
      assert.equal(model.stopping, expected);
      assert.equal(model.status, status);
      assert.equal(model.progress.valueText, "45 %, " + STEP);
      // A run being stopped has no estimate worth showing.
      if (expected === null) assert.notEqual(model.eta, null);
      else assert.equal(model.eta, null);
    });
  }
});

describe("barModel ETA", () => {
  const BY_PROGRESS = "Estimated from the progress so far";
  const BY_HISTORY = "Estimated from recent runs";
  const LATE = "taking longer than estimated";
  const SOON = "less than a minute left";
  const eta = (text, title) => ({ text, title });
  const finish = T + 5 * MINUTE;
  const rows = [
    // [name, eta, etaLeft, expected model.eta]
    ["no estimate", { basis: "progress", finishAt: iso(finish) }, null, null],
    [
      "from the progress, with a finish time",
      { basis: "progress", finishAt: iso(finish) },
      300,
      { text: "about 5 min left", title: "Estimated from the progress so far; done about " + localClock(finish) },
    ],
    ["from the progress, no finish time", { basis: "progress", secondsLeft: 30 }, 30, eta(SOON, BY_PROGRESS)],
    [
      "from history, with a finish time",
      { basis: "history", finishAt: iso(finish) },
      300,
      { text: "about 5 min left", title: "Estimated from recent runs; done about " + localClock(finish) },
    ],
    [
      "overdue",
      { basis: "history", finishAt: iso(T - MINUTE) },
      -60,
      eta(LATE, BY_HISTORY + "; done about " + localClock(T - MINUTE)),
    ],
    ["just due", { basis: "history" }, 0, eta(LATE, BY_HISTORY)],
    ["an unknown basis", { basis: "magic" }, 90, eta("about 2 min left", BY_HISTORY)],
    ["a finish time that is no time", { basis: "progress", finishAt: 12345 }, 90, eta("about 2 min left", BY_PROGRESS)],
    // etaLeft comes from the clock, the wording from the document: no eta object must not throw.
    ["no eta object", undefined, 90, eta("about 2 min left", BY_HISTORY)],
    ["eta: an array", ["progress"], 90, eta("about 2 min left", BY_HISTORY)],
  ];
  for (const [name, eta, etaLeft, expected] of rows) {
    it(name, () => {
      const doc = { running: true, progress: { progress: 50 } };
      if (eta !== undefined) doc.eta = eta;
      assert.deepEqual(barModel(doc, ctx({ etaLeft })).eta, expected);
    });
  }
  it("an idle bar shows no estimate, whatever etaLeft says", () => {
    assert.equal(barModel({ running: false, eta: { basis: "history" } }, ctx({ etaLeft: 60 })).eta, null);
  });
});

describe("barModel queued and checks", () => {
  const LATE = "Started 4 min late";
  const late = { kind: "late", message: LATE };
  const oneLate = { line: "⚠ " + LATE, title: "Late: " + LATE };
  const rows = [
    // [name, doc, state, queued, checks]
    ["queued while running", { running: true, queued: true }, "open", true, NO_CHECKS],
    ["queued while idle", { running: false, queued: true }, "open", true, NO_CHECKS],
    ["not queued", { running: true, queued: false }, "open", false, NO_CHECKS],
    ["queued as a string", { running: true, queued: "yes" }, "open", false, NO_CHECKS],
    ["queued while offline", { running: true, queued: true }, "offline", false, NO_CHECKS],
    ["a failed check", { running: false, checks: [late] }, "open", false, oneLate],
    [
      "checks while running",
      { running: true, checks: [late, { kind: "fast" }] },
      "open",
      false,
      { line: "⚠ " + LATE + " (+1 more)", title: "Late: " + LATE + "\nSuspiciously fast: " },
    ],
    ["checks while offline", { running: false, checks: [late] }, "offline", false, NO_CHECKS],
    ["checks: an object", { running: false, checks: late }, "open", false, NO_CHECKS],
  ];
  for (const [name, doc, state, queued, checks] of rows) {
    it(name, () => {
      const model = barModel(doc, ctx({ state }));
      assert.equal(model.queued, queued);
      assert.deepEqual(model.checks, checks);
    });
  }
});

describe("barModel never throws on a hostile document", () => {
  const docs = [
    {},
    [],
    { running: "yes" },
    { running: 1, progress: 45 },
    { running: true, progress: [] },
    { running: true, progress: "45 %" },
    { running: true, progress: null },
    { running: true, progress: { progress: {}, step: [] } },
    { running: true, eta: [] },
    { running: true, eta: "soon" },
    { running: true, eta: null },
    { running: true, eta: { basis: 5, finishAt: 7 } },
    { running: true, stopping: 5 },
    { running: true, stopping: "", eta: [] },
    { running: false, paused: [] },
    { running: false, paused: "yes" },
    { running: false, paused: { reason: {}, since: 5 } },
    { running: true, paused: { reason: ["x"], since: [] } },
    { running: false, nextRunAt: {}, intervalMinutes: "5" },
    { running: false, nextRunAt: [], intervalMinutes: [] },
    { running: false, checks: {} },
    { running: false, checks: "late" },
    { running: false, checks: [null, 7, [], { kind: {}, message: 5 }] },
    { running: false, lastRun: [] },
    { running: false, lastRun: "completed" },
    { running: false, lastRun: { status: 5, finishedAt: [], trigger: {}, error: {}, durationSeconds: "5", reason: 7 } },
    { running: false, lastRun: { status: "constructor", trigger: "__proto__", error: ["a", "b"] } },
    { running: true, currentRun: [], queued: {}, progress: { progress: Infinity, step: null } },
  ];
  const contexts = [
    ctx(),
    ctx({ remaining: MINUTE, etaLeft: 60 }),
    ctx({ remaining: -1, etaLeft: -1, now: null }),
    ctx({ state: "offline", everFailed: true, etaLeft: 60 }),
  ];
  docs.forEach((doc, index) => {
    it(`document ${index}: ${JSON.stringify(doc)}`, () => {
      for (const context of contexts) {
        const model = barModel(doc, context);
        assert.ok(["offline", "idle", "running"].includes(model.mode), model.mode);
        assert.equal(typeof model.status, "string");
        assert.ok(model.status.length > 0, "the bar always says something");
        assert.equal(model.mode === "running", context.state === "open" && doc.running === true);
        if (model.progress !== null) {
          assert.ok(model.progress.percent >= 0 && model.progress.percent <= 100, String(model.progress.percent));
          assert.equal(typeof model.progress.step, "string");
        }
        if (model.eta !== null) assert.equal(typeof model.eta.title, "string");
      }
    });
  });
});

describe("lastModel", () => {
  const finished = T - 5 * MINUTE;
  const rows = [
    // [name, doc, now, expected]
    ["no document", null, T, NO_LAST],
    ["no document, no clock", null, null, NO_LAST],
    ["a document without a last run", {}, T, { ...NO_LAST, empty: true }],
    ["lastRun: null", { lastRun: null }, T, { ...NO_LAST, empty: true }],
    ["lastRun: an array", { lastRun: [{ status: "completed" }] }, T, { ...NO_LAST, empty: true }],
    ["lastRun: a string", { lastRun: "completed" }, T, { ...NO_LAST, empty: true }],
    [
      "completed, with finishedAt and trigger",
      { lastRun: { status: "completed", finishedAt: iso(finished), trigger: "timer", durationSeconds: 12.5 } },
      T,
      {
        outcome: "completed",
        label: "Completed",
        parts: [localClock(finished) + " (5 minutes ago)", "scheduled"],
        error: null,
        title: "Finished " + localDateTime(finished) + "\nTook 12.5 s",
      },
    ],
    [
      "completed, the server's now unknown: no 'ago'",
      { lastRun: { status: "completed", finishedAt: iso(finished), trigger: "http" } },
      null,
      record("completed", "Completed", {
        parts: [localClock(finished), "manual"],
        title: "Finished " + localDateTime(finished),
      }),
    ],
    [
      "error: the line shows its first line, the title all of it",
      {
        lastRun: {
          status: "error",
          finishedAt: iso(finished),
          trigger: "startup",
          reason: "nightly refresh",
          durationSeconds: 3,
          error: "RuntimeError: boom\n  at line 2\n  at line 3",
        },
      },
      T,
      {
        outcome: "error",
        label: "Failed",
        parts: [localClock(finished) + " (5 minutes ago)", "start-up"],
        error: "RuntimeError: boom",
        title: [
          "Finished " + localDateTime(finished),
          "Reason: nightly refresh",
          "Took 3 s",
          "RuntimeError: boom\n  at line 2\n  at line 3",
        ].join("\n"),
      },
    ],
    [
      "cancelled, with a reason, no finish time",
      { lastRun: { status: "cancelled", reason: "cancelled by alice", trigger: "file" } },
      T,
      record("cancelled", "Cancelled", { parts: ["trigger file"], title: "Reason: cancelled by alice" }),
    ],
    [
      "just finished",
      { lastRun: { status: "completed", finishedAt: iso(T - 10 * SECOND) } },
      T,
      record("completed", "Completed", {
        parts: [localClock(T - 10 * SECOND) + " (just now)"],
        title: "Finished " + localDateTime(T - 10 * SECOND),
      }),
    ],
    ["a bare record", { lastRun: {} }, T, record("unknown", "unknown")],
    [
      "fields of the wrong types",
      { lastRun: { status: 5, finishedAt: 5, trigger: 5, reason: 5, durationSeconds: "5", error: "" } },
      T,
      record("unknown", "unknown"),
    ],
    [
      "a long first line is cut",
      { lastRun: { status: "error", error: "x".repeat(300) + "\nmore" } },
      T,
      record("error", "Failed", { error: "x".repeat(199) + "…", title: "x".repeat(300) + "\nmore" }),
    ],
  ];
  for (const [name, doc, now, expected] of rows) {
    it(name, () => {
      assert.deepEqual(lastModel(doc, now), expected);
    });
  }
  it("barModel carries the last run, online and offline", () => {
    const doc = { running: false, lastRun: { status: "completed", trigger: "timer" } };
    const expected = { outcome: "completed", label: "Completed", parts: ["scheduled"], error: null, title: null };
    assert.deepEqual(barModel(doc, ctx()).last, expected);
    assert.deepEqual(barModel(doc, ctx({ state: "offline" })).last, expected);
  });
});

describe("runChanges", () => {
  const r1 = { runId: "r1", status: "completed" };
  const r2 = { runId: "r2", status: "error", error: "boom" };
  const c2 = { runId: "r2", trigger: "http" };
  const c3 = { runId: "r3", trigger: "timer" };
  const idle1 = { running: false, lastRun: r1 };
  const running2 = { running: true, currentRun: c2, lastRun: r1, progress: { progress: 10 } };
  const running2later = { running: true, currentRun: { ...c2 }, lastRun: { ...r1 }, progress: { progress: 60 } };
  const idle2 = { running: false, lastRun: r2 };
  const running3 = { running: true, currentRun: c3, lastRun: r2 };
  const none = { started: null, finished: null };
  const fresh = { running: false, lastRun: null };
  const started2 = { started: c2, finished: null };
  const rows = [
    // [name, before, after, expected]
    ["the first document is a baseline (idle)", null, idle1, none],
    ["the first document is a baseline (running)", null, running2, none],
    ["the first document is a baseline (running with a last run)", null, running3, none],
    ["the same document again", idle1, idle1, none],
    ["a new currentRun → started", idle1, running2, started2],
    ["the same run, more progress (fresh objects)", running2, running2later, none],
    ["a new lastRun → finished", running2, idle2, { started: null, finished: r2 }],
    ["the same finished documents again", idle2, { ...idle2, lastRun: { ...r2 } }, none],
    ["a reconnect that missed the start → finished only", idle1, idle2, { started: null, finished: r2 }],
    ["one run ended and the next began between two documents", running2, running3, { started: c3, finished: r2 }],
    ["a fresh service's first run", fresh, { running: true, currentRun: c2, lastRun: null }, started2],
    ["a fresh service's first run finishes", { running: true, currentRun: c2 }, idle2, { started: null, finished: r2 }],
    ["no document after", idle1, null, none],
    ["an array after", idle1, [], none],
    ["hostile fields", idle1, { running: true, currentRun: [], lastRun: "r9" }, none],
  ];
  for (const [name, before, after, expected] of rows) {
    it(name, () => {
      const changes = runChanges(before, after);
      assert.deepEqual(changes, expected);
      // The host page is handed the record of the new document itself.
      if (expected.started) assert.equal(changes.started, after.currentRun);
      if (expected.finished) assert.equal(changes.finished, after.lastRun);
    });
  }
  it("a page that follows a whole run hears each event once", () => {
    const seen = [];
    let before = null;
    for (const doc of [idle1, idle1, running2, running2later, running2later, idle2, idle2]) {
      const { started, finished } = runChanges(before, doc);
      if (started) seen.push("started " + started.runId);
      if (finished) seen.push("finished " + finished.runId);
      before = doc;
    }
    assert.deepEqual(seen, ["started r2", "finished r2"]);
  });
});

describe("etaBasisText", () => {
  const rows = [
    ["progress", "Estimated from the progress so far"],
    ["steps", "Estimated from the usual durations of the steps left"],
    ["history", "Estimated from recent runs"],
    [undefined, "Estimated from recent runs"],
    ["constructor", "Estimated from recent runs"],
  ];
  for (const [basis, expected] of rows) it(String(basis), () => assert.equal(etaBasisText(basis), expected));
  it("is the ETA's title for an estimate from the steps", () => {
    const doc = { running: true, progress: { progress: 50 }, eta: { basis: "steps", secondsLeft: 600 } };
    assert.deepEqual(barModel(doc, ctx({ etaLeft: 600 })).eta,
      { text: "about 10 min left", title: "Estimated from the usual durations of the steps left" });
  });
});

describe("detailModel", () => {
  const running = (progress, extra = {}) => ({ running: true, currentRun: { runId: "r1" }, progress, ...extra });
  const PRS = "Fetching GitHub PRs";
  const rows = [
    // [name, doc, expected]
    ["a detail with its counts in it", running({ progress: 45, step: PRS, detail: "repo 5/15: octo/api", done: 5, total: 15 }),
      { text: "repo 5/15: octo/api", valueText: "45 %, " + PRS + " — repo 5/15: octo/api" }],
    ["a detail without its counts", running({ progress: 45, step: PRS, detail: "octo/api", done: 5, total: 15 }),
      { text: "5/15 · octo/api", valueText: "45 %, " + PRS + " — 5/15 · octo/api" }],
    ["counts alone", running({ progress: 10, step: PRS, done: 1, total: 15 }),
      { text: "1/15", valueText: "10 %, " + PRS + " — 1/15" }],
    ["a detail and no step", running({ progress: 10, detail: "GET /pulls?page=3" }),
      { text: "GET /pulls?page=3", valueText: "10 %, GET /pulls?page=3" }],
    ["neither detail nor counts", running({ progress: 45, step: PRS }), null],
    ["a detail of the wrong type", running({ progress: 45, step: PRS, detail: ["x"], done: "5" }), null],
    ["a server without details (null)", running({ progress: 45, step: PRS, detail: null, done: null, total: null }),
      null],
    ["not running", { running: false, progress: { detail: "stale" } }, null],
    ["no progress", running(null), null],
    ["no document", null, null],
  ];
  for (const [name, doc, expected] of rows) it(name, () => assert.deepEqual(detailModel(doc), expected));
});
