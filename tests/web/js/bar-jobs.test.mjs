// web/lib/bar-view.js for the jobs of a jobs file: the bar of a named job speaks of runs, a job with no
// schedule of its own says how it runs instead of a countdown, a job waiting for a slot says so, and a calendar
// schedule is named in the title. Tables, as in bar-view.test.mjs.

import { describe, it } from "node:test";
import assert from "node:assert/strict";

import { afterOf, barModel, barWords, scheduleKind, scheduleTitle } from "../../../web/lib/bar-view.js";
import {
  countdownText, laterText, listText, localClock, localDateTime, pausedTexts,
} from "../../../web/lib/format.js";

const T = Date.parse("2026-03-01T12:00:00Z");
const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const iso = (ms) => new Date(ms).toISOString();

function ctx(extra = {}) {
  return { state: "open", everFailed: false, job: "report", named: true, now: T, remaining: null, etaLeft: null,
    ...extra };
}

const INTERVAL = { kind: "interval", minutes: 30 };
const CRON = { kind: "cron", expression: "30 7 * * 1-5", timezone: "Europe/Berlin" };
const MANUAL = { kind: "manual" };
const manualDoc = (fields = {}) => ({ running: false, job: "report", schedule: MANUAL, nextRunAt: null,
  minutesUntilNextRun: null, secondsUntilNextRun: null, intervalMinutes: null, ...fields });

describe("the words of a bar", () => {
  it("the default job's bar speaks of snapshots, a named job's of runs", () => {
    assert.equal(barWords(false).noun, "snapshot");
    assert.equal(barWords(true).noun, "run");
    assert.equal(barWords(true).none, "No run yet");
    assert.equal(barWords(false).none, "No snapshot has run yet");
  });

  const rows = [
    // [ctx, doc, status]
    [{ named: false, remaining: 5 * MINUTE }, { running: false }, "Next snapshot in 5 minutes"],
    [{ remaining: 5 * MINUTE }, { running: false, schedule: INTERVAL }, "Next run in 5 minutes"],
    [{ remaining: 0 }, { running: false }, "Next run starting…"],
    [{ remaining: null }, { running: false }, "Waiting for the next run"],
    [{}, { running: true, progress: { progress: 5 } }, "Running..."],
    [{ named: false }, { running: true, progress: { progress: 5 } }, "Snapshot: Running..."],
    [{}, { running: false, paused: { reason: "disk" } }, "Paused — automatic runs off (disk)"],
    [{ named: false }, { running: false, paused: {} }, "Paused — automatic snapshots off"],
  ];
  for (const [extra, doc, status] of rows) {
    it(`${JSON.stringify(extra)} ${JSON.stringify(doc)} → ${status}`, () => {
      assert.equal(barModel(doc, ctx(extra)).status, status);
    });
  }

  it("the paused chip says runs on a named job's bar", () => {
    assert.equal(barModel({ running: true, paused: {} }, ctx()).pausedChip, "automatic runs paused");
    assert.equal(barModel({ running: true, paused: {} }, ctx({ named: false })).pausedChip,
      "automatic snapshots paused");
  });

  it("an unknown job is named in the offline line", () => {
    assert.equal(barModel(null, ctx({ state: "missing", job: "nightly" })).status,
      "The snapshot service has no job named nightly");
  });
});

describe("a job with no schedule of its own", () => {
  const rows = [
    // [name, doc fields, status, title]
    ["triggers only", {}, "Runs on triggers", "No schedule of its own: runs on Run Now and trigger files"],
    [
      "after one job",
      { after: ["snapshot"] },
      "Runs after snapshot",
      "No schedule of its own: runs on Run Now and trigger files, and after each completed run of snapshot",
    ],
    ["after two jobs", { after: ["snapshot", "import"] }, "Runs after snapshot and import", null],
    ["after, said in the schedule", { schedule: { ...MANUAL, after: ["a", "b", "c"] } }, "Runs after a, b and c", null],
    ["an after that is no list", { after: "snapshot" }, "Runs on triggers", null],
    ["names that are no strings are left out", { after: [5, "", null, "snapshot"] }, "Runs after snapshot", null],
  ];
  for (const [name, fields, status, title] of rows) {
    it(name, () => {
      const model = barModel(manualDoc(fields), ctx({ remaining: null }));
      assert.equal(model.mode, "idle");
      assert.equal(model.status, status);
      if (title !== null) assert.equal(model.statusTitle, title);
    });
  }

  it("running: its progress as any job's", () => {
    const model = barModel(manualDoc({ running: true, progress: { progress: 40, step: "Writing" } }), ctx());
    assert.equal(model.status, "Running...");
    assert.equal(model.progress.percent, 40);
  });

  it("paused: the pause says more than how it runs", () => {
    assert.equal(barModel(manualDoc({ paused: {} }), ctx()).status, "Paused — automatic runs off");
  });
});

describe("a job waiting for a slot", () => {
  it("says so instead of the countdown, and shows no follow-up queued", () => {
    const doc = { running: false, waiting: true, queued: true, pendingTriggers: 1, schedule: INTERVAL };
    const model = barModel(doc, ctx({ remaining: 20 * MINUTE }));
    assert.equal(model.status, "Waiting for a slot");
    assert.equal(model.waiting, true);
    assert.equal(model.queued, false);
    assert.match(model.statusTitle, /max-parallel/);
  });

  it("a waiting manual job waits all the same", () => {
    assert.equal(barModel(manualDoc({ waiting: true }), ctx()).status, "Waiting for a slot");
  });

  it("a paused job whose triggered run waits: waiting, and the pause in its chip", () => {
    const model = barModel({ running: false, waiting: true, paused: { reason: "x" } }, ctx());
    assert.equal(model.status, "Waiting for a slot");
    assert.equal(model.paused, true);
    assert.equal(model.pausedChipTitle, "Paused: x");
  });

  const rows = [
    // [name, doc, waiting, queued]
    ["waiting: no boolean", { running: false, waiting: "yes", queued: true }, false, true],
    ["running (a follow-up is queued)", { running: true, waiting: true, queued: true }, false, true],
    ["not waiting", { running: false, waiting: false, queued: false }, false, false],
  ];
  for (const [name, doc, waiting, queued] of rows) {
    it(name, () => {
      const model = barModel(doc, ctx());
      assert.equal(model.waiting, waiting);
      assert.equal(model.queued, queued);
    });
  }

  it("offline: never waiting", () => {
    assert.equal(barModel({ running: false, waiting: true }, ctx({ state: "offline" })).waiting, false);
  });
});

describe("scheduleKind, afterOf and scheduleTitle", () => {
  const kinds = [[{ schedule: INTERVAL }, "interval"], [{ schedule: CRON }, "cron"], [{ schedule: MANUAL }, "manual"],
    [{}, ""], [{ schedule: "cron" }, ""], [{ schedule: { kind: "weekly" } }, ""], [{ schedule: [] }, ""]];
  for (const [doc, kind] of kinds) {
    it(`scheduleKind(${JSON.stringify(doc)}) → ${JSON.stringify(kind)}`, () => assert.equal(scheduleKind(doc), kind));
  }

  it("afterOf reads `after`, else the schedule's", () => {
    assert.deepEqual(afterOf({ after: ["a"] }), ["a"]);
    assert.deepEqual(afterOf({ schedule: { after: ["b"] } }), ["b"]);
    assert.deepEqual(afterOf({}), []);
  });

  const soon = T + 90 * MINUTE;
  const later = T + 50 * HOUR;
  const titles = [
    // [name, doc, title]
    ["an interval", { nextRunAt: iso(soon), intervalMinutes: 30, schedule: INTERVAL }, "interval",
      "Next automatic run at " + localClock(soon) + " (every 30 minutes)"],
    ["a calendar, today", { nextRunAt: iso(soon), intervalMinutes: null, schedule: CRON }, "cron",
      "Next automatic run at " + localClock(soon) + " (cron '30 7 * * 1-5' in Europe/Berlin)"],
    ["a calendar, days away: with its date", { nextRunAt: iso(later), schedule: CRON }, "cron",
      "Next automatic run at " + localDateTime(later) + " (cron '30 7 * * 1-5' in Europe/Berlin)"],
    ["a calendar without a zone", { nextRunAt: iso(soon), schedule: { kind: "cron", expression: "0 * * * *" } },
      "cron", "Next automatic run at " + localClock(soon) + " (cron '0 * * * *')"],
    ["a calendar without an expression", { nextRunAt: iso(soon), schedule: { kind: "cron" } }, "cron",
      "Next automatic run at " + localClock(soon)],
    ["nothing said", {}, "", null],
  ];
  for (const [name, doc, kind, title] of titles) {
    it(`scheduleTitle: ${name}`, () => assert.equal(scheduleTitle(doc, kind, "run", T), title));
  }

  it("a cron job's idle bar counts down in its last hour, as an interval job's does", () => {
    const due = T + 45 * MINUTE;
    const model = barModel({ running: false, nextRunAt: iso(due), schedule: CRON }, ctx({ remaining: 45 * MINUTE }));
    assert.equal(model.status, "Next run in 45 minutes");
    assert.match(model.statusTitle, /cron '30 7 \* \* 1-5' in Europe\/Berlin/);
  });

  const cronRows = [
    // [name, due]
    ["later today", T + 90 * MINUTE],
    ["in three days", T + 72 * HOUR],
    ["in a month", T + 30 * 24 * HOUR],
  ];
  for (const [name, due] of cronRows) {
    it(`a cron job's next run ${name}: the time it comes at`, () => {
      const doc = { running: false, nextRunAt: iso(due), schedule: CRON };
      const model = barModel(doc, ctx({ remaining: due - T }));
      assert.equal(model.status, "Next run " + laterText(due, T));
      assert.ok(model.status.includes(localClock(due)), model.status);
    });
  }

  it("an interval job counts down however far its next run is", () => {
    const doc = { running: false, nextRunAt: iso(T + 10 * HOUR), schedule: INTERVAL };
    assert.equal(barModel(doc, ctx({ remaining: 10 * HOUR })).status, "Next run in 600 minutes");
  });
});

describe("laterText", () => {
  it("says the time the same day, the weekday within the week, else the date", () => {
    const sameDay = new Date(T);
    sameDay.setHours(23, 0, 0, 0); // late the same day, in the zone the test runs in
    const at = sameDay.getTime();
    if (at > T) assert.equal(laterText(at, T), "at " + localClock(at));
    const week = T + 3 * 24 * HOUR;
    assert.equal(laterText(week, T),
      "on " + new Date(week).toLocaleDateString([], { weekday: "short" }) + " at " + localClock(week));
    const far = T + 40 * 24 * HOUR;
    assert.equal(laterText(far, T), "on " + new Date(far).toLocaleDateString() + " at " + localClock(far));
  });
});

describe("format's words for jobs", () => {
  it("countdownText takes the noun", () => {
    assert.equal(countdownText(5 * MINUTE, "run"), "Next run in 5 minutes");
    assert.equal(countdownText(null, "run"), "Waiting for the next run");
    assert.equal(countdownText(5 * MINUTE), "Next snapshot in 5 minutes");
  });

  it("pausedTexts takes the nouns", () => {
    assert.equal(pausedTexts({}, "runs").line, "Paused — automatic runs off");
    assert.equal(pausedTexts({}).line, "Paused — automatic snapshots off");
  });

  const lists = [[[], ""], [["a"], "a"], [["a", "b"], "a and b"], [["a", "b", "c"], "a, b and c"]];
  for (const [names, text] of lists) {
    it(`listText(${JSON.stringify(names)}) → ${JSON.stringify(text)}`, () => assert.equal(listText(names), text));
  }
});

describe("barModel never throws on a hostile job document", () => {
  const docs = [
    { running: false, schedule: null, waiting: null },
    { running: false, schedule: { kind: "cron", expression: {}, timezone: [] } },
    { running: false, schedule: { kind: "manual", after: {} }, after: 5 },
    { running: false, schedule: { kind: "manual" }, after: [{}, [], null] },
    { running: true, waiting: true, schedule: "manual" },
    { running: false, job: {}, waiting: 1, nextRunAt: null, secondsUntilNextRun: null },
  ];
  docs.forEach((doc, index) => {
    it(`document ${index}`, () => {
      for (const extra of [{}, { named: false }, { remaining: -5 }, { state: "offline" }]) {
        const model = barModel(doc, ctx(extra));
        assert.equal(typeof model.status, "string");
        assert.ok(model.status.length > 0);
      }
    });
  });
});
