// web/lib/steps-view.js: a run's timeline from its steps, the usual durations and the live status, as tables.

import { describe, it } from "node:test";
import assert from "node:assert/strict";

import {
  isSlow, liveOf, mergeLive, stepsToCome, timelineModel, usualByName, validSteps,
} from "../../../web/lib/steps-view.js";

const T = Date.parse("2026-03-01T12:00:00Z");
const SECOND = 1000;
const iso = (ms) => new Date(ms).toISOString();

/** A recorded step that started `start` s after T and lasted `seconds` (null: still going). */
function step(name, start, seconds, extra = {}) {
  const end = seconds === null ? null : T + (start + seconds) * SECOND;
  return { name, startedAt: iso(T + start * SECOND), endedAt: end === null ? null : iso(end),
    durationSeconds: seconds, percentStart: 0, percentEnd: 0, detail: null, done: null, total: null, ...extra };
}

/** A statistics answer: [name, median, runs = 20] in the latest completed run's order. */
function stats(...rows) {
  return { runs: 20, runIds: [], medianRunSeconds: 100, latestRunId: "r0",
    steps: rows.map(([name, median, runs = 20]) => ({ name, runs, medianSeconds: median, p90Seconds: median * 1.2,
      share: 0.1, latestSeconds: median, slow: false })) };
}

const USUAL = stats(["Starting", 1], ["Fetching GitHub PRs", 60], ["Computing stats", 20], ["Writing", 5]);

/** The rows of a model as [state, name, time, detail, remark, flag], for tables. */
function rows(model) {
  return model.rows.map((r) => [r.state, r.name, r.time, r.detail, r.remark, r.flag]);
}

describe("validSteps", () => {
  const table = [
    ["no answer", null, []],
    ["no steps field", {}, []],
    ["steps that is no list", { steps: "x" }, []],
    ["a step with no name", { steps: [{ startedAt: "x" }] }, []],
    ["a name that is no string", { steps: [{ name: 5 }] }, []],
    ["a step that is no object", { steps: ["Starting", null, [1]] }, []],
    ["one good, one bad", { steps: [{ name: "A" }, { name: null }] }, [{ name: "A" }]],
  ];
  for (const [name, body, expected] of table) it(name, () => assert.deepEqual(validSteps(body), expected));
});

describe("usualByName", () => {
  it("keeps the order, median, p90 and runs", () => {
    const usual = usualByName(stats(["A", 10, 3], ["B", 2.5]));
    assert.deepEqual([...usual.entries()], [
      ["A", { median: 10, p90: 12, runs: 3, order: 0 }],
      ["B", { median: 2.5, p90: 3, runs: 20, order: 1 }],
    ]);
  });
  const table = [
    ["no answer", null, []],
    ["a median that is no number", { steps: [{ name: "A", medianSeconds: "10" }] }, []],
    ["a negative median", { steps: [{ name: "A", medianSeconds: -1 }] }, []],
    ["a name twice: the first wins", { steps: [{ name: "A", medianSeconds: 1 }, { name: "A", medianSeconds: 9 }] }, ["A"]],
    ["runs that are no count", { steps: [{ name: "A", medianSeconds: 1, runs: -3 }] }, ["A"]],
  ];
  for (const [name, body, names] of table) it(name, () => assert.deepEqual([...usualByName(body).keys()], names));
});

describe("liveOf", () => {
  const progress = { step: "Fetching GitHub PRs", detail: "repo 5/15", done: 5, total: 15, stepStartedAt: iso(T) };
  const doc = (extra = {}) => ({ running: true, currentRun: { runId: "r1" }, progress, ...extra });
  const live = { step: "Fetching GitHub PRs", detail: "repo 5/15", done: 5, total: 15, startedAt: T };
  const table = [
    ["the running run", doc(), "r1", live],
    ["another run", doc(), "r0", null],
    ["nothing running", doc({ running: false }), "r1", null],
    ["running as a string", doc({ running: "true" }), "r1", null],
    ["no current run", doc({ currentRun: null }), "r1", null],
    ["no progress", doc({ progress: null }), "r1", null],
    ["no run id asked", doc(), null, null],
    ["no document", null, "r1", null],
    ["fields of the wrong type", doc({ progress: { step: 1, detail: [], done: -1, total: 1.5, stepStartedAt: "x" } }),
      "r1", { step: "", detail: "", done: null, total: null, startedAt: null }],
    ["absurd counts", doc({ progress: { step: "A", done: 1e13, total: Infinity } }), "r1",
      { step: "A", detail: "", done: null, total: null, startedAt: null }],
  ];
  for (const [name, given, runId, expected] of table) it(name, () => assert.deepEqual(liveOf(given, runId), expected));
});

describe("isSlow", () => {
  const usual = (median, runs = 20) => ({ median, p90: null, runs, order: 0 });
  const table = [
    // [seconds, usual, slow]
    [16, usual(10), true],
    [15, usual(10), false], // exactly 1.5 times is not more
    [15.1, usual(10), true],
    [1.4, usual(0.5), false], // more than 1.5 times, but less than a second more
    [1.5, usual(0.5), true],
    [100, usual(10, 2), false], // too few runs to say
    [100, usual(10, 3), true],
    [null, usual(10), false],
    [100, null, false],
    [0.5, usual(0), false],
    [1, usual(0), true],
  ];
  for (const [seconds, u, expected] of table) {
    it(`${seconds} s against ${u ? u.median + " s over " + u.runs + " runs" : "nothing"} → ${expected}`, () => {
      assert.equal(isSlow(seconds, u), expected);
    });
  }
});

describe("mergeLive", () => {
  const done = step("Starting", 0, 2);
  const going = step("Fetching GitHub PRs", 2, null, { detail: "repo 1/15", done: 1, total: 15 });
  const live = (stepName, startedAt, detail = "repo 5/15") => ({ step: stepName, detail, done: 5, total: 15, startedAt });
  const table = [
    // [name, fetched, running, live, expected [name, seconds, detail, done, open] per step, current]
    ["a finished run", [done, step("Writing", 2, 3)], false, null,
      [["Starting", 2, "", null, false], ["Writing", 3, "", null, false]], -1],
    ["a running run without the live report", [done, going], true, null,
      [["Starting", 2, "", null, false], ["Fetching GitHub PRs", null, "repo 1/15", 1, true]], 1],
    ["the live report goes on with the last step", [done, going], true, live("Fetching GitHub PRs", T + 2 * SECOND),
      [["Starting", 2, "", null, false], ["Fetching GitHub PRs", null, "repo 5/15", 5, true]], 1],
    ["a new step not fetched yet ends the last one where it begins", [done, going], true,
      live("Computing stats", T + 32 * SECOND, ""),
      [["Starting", 2, "", null, false], ["Fetching GitHub PRs", 30, "repo 1/15", 1, false],
        ["Computing stats", null, "", 5, true]], 2],
    ["a new step whose start is unknown ends the last one with no duration", [done, going], true,
      live("Computing stats", null, ""),
      [["Starting", 2, "", null, false], ["Fetching GitHub PRs", null, "repo 1/15", 1, false],
        ["Computing stats", null, "", 5, true]], 2],
    ["nothing fetched yet: the live step alone", [], true, live("Starting", T),
      [["Starting", null, "repo 5/15", 5, true]], 0],
    ["a live report with no step changes nothing", [done, going], true, live("", T),
      [["Starting", 2, "", null, false], ["Fetching GitHub PRs", null, "repo 1/15", 1, true]], 1],
    ["an open step of an ended run is not current", [done, going], false, null,
      [["Starting", 2, "", null, false], ["Fetching GitHub PRs", null, "repo 1/15", 1, true]], -1],
  ];
  for (const [name, fetched, running, given, expected, current] of table) {
    it(name, () => {
      const merged = mergeLive(fetched, running, given);
      assert.deepEqual(merged.steps.map((s) => [s.name, s.seconds, s.detail, s.done, s.open]), expected);
      assert.equal(merged.current, current);
    });
  }
  it("takes a duration from the times when the answer has none", () => {
    const [s] = mergeLive([{ ...step("A", 0, 4), durationSeconds: null }], false, null).steps;
    assert.equal(s.seconds, 4);
  });
  it("leaves the fetched steps as they were", () => {
    const fetched = [done, going];
    const before = JSON.stringify(fetched);
    mergeLive(fetched, true, live("Computing stats", T + 32 * SECOND));
    assert.equal(JSON.stringify(fetched), before);
  });
});

describe("stepsToCome", () => {
  const usual = usualByName(USUAL);
  const table = [
    // [seen, expected]
    [[], ["Starting", "Fetching GitHub PRs", "Computing stats", "Writing"]],
    [["Starting"], ["Fetching GitHub PRs", "Computing stats", "Writing"]],
    [["Starting", "Fetching GitHub PRs"], ["Computing stats", "Writing"]],
    // A step skipped this time is not "to come" once a later one was reached.
    [["Starting", "Computing stats"], ["Writing"]],
    // A step the last run did not have changes nothing of what is to come.
    [["Starting", "Something new"], ["Fetching GitHub PRs", "Computing stats", "Writing"]],
    [["Writing"], []],
  ];
  for (const [seen, expected] of table) {
    it(JSON.stringify(seen), () => assert.deepEqual(stepsToCome(seen, usual).map((s) => s.name), expected));
  }
});

describe("timelineModel", () => {
  const running = (...steps) => ({ runId: "r1", status: "running", steps, truncated: false });
  const ended = (status, ...steps) => ({ runId: "r1", status, steps, truncated: false });
  const liveAt = (name, start, extra = {}) => ({ step: name, detail: "", done: null, total: null,
    startedAt: T + start * SECOND, ...extra });
  const table = [
    [
      "a running run: done, current with its detail and time so far, and the steps to come",
      running(step("Starting", 0, 1), step("Fetching GitHub PRs", 1, null)),
      { stats: USUAL, now: T + 31 * SECOND,
        live: liveAt("Fetching GitHub PRs", 1, { detail: "octo/api", done: 5, total: 15 }) },
      [
        ["done", "Starting", "1 s", "", "", ""],
        ["current", "Fetching GitHub PRs", "30 s so far", "5/15 · octo/api", "usually 1 min", ""],
        ["todo", "Computing stats", "usually 20 s", "", "", ""],
        ["todo", "Writing", "usually 5 s", "", "", ""],
      ],
      "Step 2 of about 4",
    ],
    [
      "the current step taking longer than usual",
      running(step("Starting", 0, 1), step("Computing stats", 1, null)),
      { stats: USUAL, now: T + 61 * SECOND },
      [
        ["done", "Starting", "1 s", "", "", ""],
        ["current", "Computing stats", "1 min so far", "", "taking longer than usual (usually 20 s)", "slow"],
        ["todo", "Writing", "usually 5 s", "", "", ""],
      ],
      "Step 2 of about 3",
    ],
    [
      "a done step slower than usual, with its last detail and counts",
      ended("completed", step("Fetching GitHub PRs", 0, 150, { detail: "repo 15/15: octo/web", done: 15, total: 15 })),
      { stats: USUAL, now: T },
      [["done", "Fetching GitHub PRs", "2 min 30 s", "repo 15/15: octo/web", "slower than usual (usually 1 min)", "slow"]],
      "1 step in 2 min 30 s",
    ],
    [
      "a failed run: its last step says so",
      ended("error", step("Starting", 0, 1), step("Fetching GitHub PRs", 1, 3)),
      { stats: USUAL },
      [
        ["done", "Starting", "1 s", "", "", ""],
        ["done", "Fetching GitHub PRs", "3 s", "", "failed during this step", "ended"],
      ],
      "2 steps in 4 s",
    ],
    [
      "a cancelled run whose last step is slow too",
      ended("cancelled", step("Computing stats", 0, 90)),
      { stats: USUAL },
      [["done", "Computing stats", "1 min 30 s", "", "cancelled during this step; slower than usual (usually 20 s)",
        "ended"]],
      "1 step in 1 min 30 s",
    ],
    [
      "an ended run has no steps to come, even with a live report of another run's step",
      ended("completed", step("Starting", 0, 1)),
      { stats: USUAL, live: liveAt("Writing", 5) },
      [["done", "Starting", "1 s", "", "", ""]],
      "1 step in 1 s",
    ],
    [
      "a running run without statistics: no steps to come, no usual times",
      running(step("Starting", 0, 1), step("Fetching GitHub PRs", 1, null)),
      { stats: null, now: T + 11 * SECOND },
      [["done", "Starting", "1 s", "", "", ""], ["current", "Fetching GitHub PRs", "10 s so far", "", "", ""]],
      "Step 2",
    ],
    [
      "the server's clock not known yet: no time so far",
      running(step("Starting", 0, null)),
      { stats: null, now: null },
      [["current", "Starting", "", "", "", ""]],
      "Step 1",
    ],
    [
      "a clock behind the step's start says 0, never a negative time",
      running(step("Starting", 10, null)),
      { stats: null, now: T },
      [["current", "Starting", "< 0.1 s so far", "", "", ""]],
      "Step 1",
    ],
    [
      "before the answer came: the live step and the steps to come",
      null,
      { stats: USUAL, now: T + 2 * SECOND, live: liveAt("Starting", 0), status: "running" },
      [
        ["current", "Starting", "2 s so far", "", "taking longer than usual (usually 1 s)", "slow"],
        ["todo", "Fetching GitHub PRs", "usually 1 min", "", "", ""],
        ["todo", "Computing stats", "usually 20 s", "", "", ""],
        ["todo", "Writing", "usually 5 s", "", "", ""],
      ],
      "Step 1 of about 4",
    ],
    [
      "a run recorded before steps existed",
      ended("completed"),
      { stats: USUAL },
      [],
      "",
    ],
    [
      "a done step without a duration shows none",
      ended("error", { ...step("Starting", 0, 1), endedAt: null, durationSeconds: null }),
      {},
      [["done", "Starting", "", "", "failed during this step", "ended"]],
      "1 step",
    ],
  ];
  for (const [name, run, ctx, expected, summary] of table) {
    it(name, () => {
      const model = timelineModel(run, ctx);
      assert.deepEqual(rows(model), expected);
      assert.equal(model.summary, summary);
    });
  }

  const notes = [
    ["not fetched yet", null, "Loading…"],
    ["no steps recorded", ended("completed"), "No steps were recorded for this run"],
    ["cut to the first steps", { ...ended("completed", step("A", 0, 1)), truncated: true },
      "Only the run's first steps were kept; the last one counts the rest"],
    ["nothing to say", ended("completed", step("A", 0, 1)), ""],
  ];
  for (const [name, run, note] of notes) it("note: " + name, () => assert.equal(timelineModel(run, {}).note, note));

  it("labels each state for screen readers, and marks only the current step running", () => {
    const model = timelineModel(running(step("Starting", 0, 1), step("Fetching GitHub PRs", 1, null)),
      { stats: USUAL, now: T });
    assert.deepEqual(model.rows.map((r) => r.label), ["Done", "Now", "To come", "To come"]);
    assert.equal(model.running, true);
    assert.equal(timelineModel(ended("error", step("A", 0, 1)), {}).rows[0].label, "Ended");
  });

  it("keys rows by position and name, so a step begun again under the same name is a new row", () => {
    const model = timelineModel(running(step("A", 0, 1), step("A", 1, null)), { now: T });
    assert.deepEqual(model.rows.map((r) => r.key), ["0 A", "1 A"]);
  });

  it("keeps every step of a long run, in order", () => {
    const many = Array.from({ length: 1000 }, (_, i) => step("step " + i, i, 1));
    const model = timelineModel(ended("completed", ...many), {});
    assert.equal(model.rows.length, 1000);
    assert.equal(model.rows[999].name, "step 999");
    assert.equal(model.summary, "1000 steps in 16 min");
  });

  it("shows a step's name as it came, markup and all (the element sets it as text)", () => {
    const name = "<img src=x onerror=alert(1)>";
    assert.equal(timelineModel(ended("completed", step(name, 0, 1)), {}).rows[0].name, name);
  });
});
