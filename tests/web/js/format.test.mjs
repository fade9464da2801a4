// web/lib/format.js: the words and numbers the elements show, as tables of input and expected text.
// Run with `node --test tests/web/js/` (tests/web/test_js_units.py runs it from pytest).

import { describe, it } from "node:test";
import assert from "node:assert/strict";

import {
  agoText,
  checksText,
  countdownText,
  durationText,
  etaText,
  firstLine,
  localDateTime,
  outcomeLabel,
  parseTime,
  pausedTexts,
  percentOf,
  plural,
  progressValueText,
  shortAgo,
  countOf,
  countsText,
  detailLine,
  text,
  toNumber,
  triggerLabel,
} from "../../../web/lib/format.js";

const T = Date.parse("2026-03-01T12:00:00Z");
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** A value as the test's name shows it (JSON.stringify turns NaN into "null" and drops undefined). */
function show(value) {
  return typeof value === "number" || value === undefined ? String(value) : JSON.stringify(value);
}

/** One `it` per row, named after its input, so a failure names the row. */
function table(fn, rows) {
  for (const [args, expected] of rows) {
    it(`${fn.name}(${args.map(show).join(", ")}) → ${show(expected)}`, () => {
      assert.deepEqual(fn(...args), expected);
    });
  }
}

describe("durationText", () => {
  table(durationText, [
    [[null], ""],
    [[undefined], ""],
    [[NaN], ""],
    [[Infinity], ""],
    [[-1], ""],
    [["12"], ""],
    [[0], "< 0.1 s"],
    [[0.05], "< 0.1 s"],
    [[0.1], "0.1 s"],
    [[2.345], "2.3 s"],
    [[9.94], "9.9 s"],
    [[12], "12 s"],
    [[12.4], "12 s"],
    [[59], "59 s"],
    [[60], "1 min"],
    [[200], "3 min 20 s"],
    [[599], "9 min 59 s"],
    [[600], "10 min"],
    [[659], "10 min"],
    [[3599], "59 min"],
    [[3600], "1 h"],
    [[3900], "1 h 5 min"],
    [[7200], "2 h"],
    [[90000], "25 h"],
  ]);
  // Rounding must carry into the next unit, never show "60 s".
  table(durationText, [
    [[59.6], "1 min"],
    [[119.6], "2 min"],
    [[3599.6], "1 h"],
  ]);
});

describe("countdownText", () => {
  table(countdownText, [
    [[null], "Waiting for the next snapshot"],
    [[-5000], "Next snapshot starting…"],
    [[0], "Next snapshot starting…"],
    [[1], "Next snapshot in less than a minute"],
    [[59999], "Next snapshot in less than a minute"],
    [[60000], "Next snapshot in 1 minute"],
    [[119999], "Next snapshot in 1 minute"],
    [[120000], "Next snapshot in 2 minutes"],
    [[60 * MINUTE], "Next snapshot in 60 minutes"],
  ]);
});

describe("agoText and shortAgo, with an explicit now", () => {
  const rows = [
    // [at, now, agoText, shortAgo]
    [T, null, "", ""],
    [null, T, "", ""],
    [T + 5 * MINUTE, T, "just now", "just now"], // a time in the future (clocks apart): not "-5 minutes ago"
    [T, T, "just now", "just now"],
    [T - 59 * SECOND, T, "just now", "just now"],
    [T - MINUTE, T, "1 minute ago", "1 min ago"],
    [T - 5 * MINUTE - 30 * SECOND, T, "5 minutes ago", "5 min ago"],
    [T - 59 * MINUTE, T, "59 minutes ago", "59 min ago"],
    [T - HOUR, T, "1 hour ago", "1 h ago"],
    [T - 3 * HOUR, T, "3 hours ago", "3 h ago"],
    [T - 47 * HOUR, T, "47 hours ago", "47 h ago"],
    [T - 48 * HOUR, T, "2 days ago", "2 days ago"],
    [T - 24 * 10 * HOUR, T, "10 days ago", "10 days ago"],
  ];
  for (const [at, now, long, short] of rows) {
    it(`${at === null ? "null" : (now - at) / 1000 + " s"} before ${now === null ? "an unknown now" : "now"}`, () => {
      assert.equal(agoText(at, now), long);
      assert.equal(shortAgo(at, now), short);
    });
  }
});

describe("etaText", () => {
  table(etaText, [
    [[-3], "taking longer than estimated"],
    [[0], "taking longer than estimated"],
    [[0.5], "less than a minute left"],
    [[59.9], "less than a minute left"],
    [[60], "about 1 min left"],
    [[89], "about 1 min left"],
    [[90], "about 2 min left"],
    [[600], "about 10 min left"],
  ]);
});

describe("percentOf", () => {
  table(percentOf, [
    [[null], 0],
    [[undefined], 0],
    [["45"], 0],
    [[[45]], 0],
    [[{}], 0],
    [[{ progress: null }], 0],
    [[{ progress: "45" }], 0],
    [[{ progress: NaN }], 0],
    [[{ progress: 45 }], 45],
    [[{ progress: 33.3 }], 33.3],
    [[{ progress: -4 }], 0],
    [[{ progress: 140 }], 100],
    [[{ progress: Infinity }], 0],
  ]);
});

describe("progressValueText", () => {
  table(progressValueText, [
    [[45, "Fetching GitHub PRs (5/15 repos)"], "45 %, Fetching GitHub PRs (5/15 repos)"],
    [[45, ""], "45 %"],
    [[45, null], "45 %"],
    [[0, "Starting"], "0 %, Starting"],
    [[100, "Done"], "100 %, Done"],
    [[33.333, "Step"], "33.3 %, Step"],
    [[66.66, ""], "66.7 %"],
  ]);
});

describe("checksText", () => {
  const late = { kind: "late", message: "Started 4 min late" };
  const long = { kind: "long", message: "Took 3 times its usual time" };
  table(checksText, [
    [[undefined], { line: "", title: "" }],
    [[null], { line: "", title: "" }],
    [["late"], { line: "", title: "" }],
    [[[]], { line: "", title: "" }],
    [[[null, "x", 3]], { line: "", title: "" }],
    [[[late]], { line: "⚠ Started 4 min late", title: "Late: Started 4 min late" }],
    [
      [[late, long]],
      {
        line: "⚠ Started 4 min late (+1 more)",
        title: "Late: Started 4 min late\nLong run: Took 3 times its usual time",
      },
    ],
    [[[null, long, "x"]], { line: "⚠ Took 3 times its usual time", title: "Long run: Took 3 times its usual time" }],
    [[[{ kind: "fast" }]], { line: "⚠ Suspiciously fast", title: "Suspiciously fast: " }],
    [[[{ kind: "disk", message: "Low disk" }]], { line: "⚠ Low disk", title: "disk: Low disk" }],
    [[[{}]], { line: "⚠ check failed", title: "Check: " }],
    [[[{ kind: "constructor" }]], { line: "⚠ check failed", title: "constructor: " }],
  ]);
});

describe("outcomeLabel and triggerLabel", () => {
  table(outcomeLabel, [
    [["completed"], "Completed"],
    [["error"], "Failed"],
    [["cancelled"], "Cancelled"],
    [["running"], "Interrupted"],
    [["skipped"], "skipped"],
    [[""], "Unknown"],
    [[null], "Unknown"],
    [[42], "Unknown"],
    // Names every object inherits are not labels: a status from the network must not show a function.
    [["constructor"], "constructor"],
    [["toString"], "toString"],
    [["__proto__"], "__proto__"],
  ]);
  table(triggerLabel, [
    [["startup"], "start-up"],
    [["timer"], "scheduled"],
    [["http"], "manual"],
    [["file"], "trigger file"],
    [["webhook"], "webhook"],
    [[""], "?"],
    [[undefined], "?"],
    [[{}], "?"],
    [["hasOwnProperty"], "hasOwnProperty"],
  ]);
});

describe("parseTime", () => {
  table(parseTime, [
    [["2026-03-01T12:00:00Z"], T],
    [["2026-03-01T12:00:00.250Z"], T + 250],
    [["2026-03-01T13:00:00+01:00"], T],
    [["2026-03-01T12:00:00.123456+00:00"], T + 123],
    [[""], null],
    [["not a time"], null],
    [["2026-13-45T99:00:00Z"], null],
    [[null], null],
    [[undefined], null],
    [[T], null], // epoch numbers are not ISO times
    [[{}], null],
  ]);
});

describe("toNumber", () => {
  table(toNumber, [
    [[0], 0],
    [[-1.5], -1.5],
    [[1e6], 1e6],
    [[NaN], null],
    [[Infinity], null],
    [[-Infinity], null],
    [["5"], null],
    [[""], null],
    [[null], null],
    [[undefined], null],
    [[true], null],
    [[[5]], null],
  ]);
});

describe("small helpers", () => {
  table(text, [
    [["a"], "a"],
    [[""], ""],
    [[5], ""],
    [[null], ""],
  ]);
  table(plural, [
    [[0, "minute"], "0 minutes"],
    [[1, "minute"], "1 minute"],
    [[2, "day"], "2 days"],
  ]);
  table(firstLine, [
    [["one\ntwo"], "one"],
    [[""], ""],
    [[42], "42"],
    [["x".repeat(200)], "x".repeat(200)],
    [["x".repeat(201)], "x".repeat(199) + "…"],
  ]);
});

describe("pausedTexts", () => {
  const since = "2026-03-01T12:00:00Z";
  // The tooltip's date is in the reader's locale and time zone: compare with the module's own rendering.
  const sinceText = localDateTime(T);
  table(pausedTexts, [
    [[{}], { line: "Paused — automatic snapshots off", title: "Paused" }],
    [
      [{ reason: "maintenance" }],
      { line: "Paused — automatic snapshots off (maintenance)", title: "Paused: maintenance" },
    ],
    [[{ since }], { line: "Paused — automatic snapshots off", title: "Paused since " + sinceText }],
    [
      [{ reason: "maintenance", since }],
      {
        line: "Paused — automatic snapshots off (maintenance)",
        title: "Paused since " + sinceText + ": maintenance",
      },
    ],
    [[{ reason: 7, since: "yesterday" }], { line: "Paused — automatic snapshots off", title: "Paused" }],
  ]);
  it("renders the since time as a real date", () => {
    assert.notEqual(sinceText, "");
    assert.notEqual(sinceText, "Invalid Date");
  });
});

describe("progressValueText with the step's detail", () => {
  table(progressValueText, [
    [[45, "Fetching GitHub PRs", "repo 5/15: octo/api"], "45 %, Fetching GitHub PRs — repo 5/15: octo/api"],
    [[45, "Fetching GitHub PRs", ""], "45 %, Fetching GitHub PRs"],
    [[45, "", "repo 5/15"], "45 %, repo 5/15"],
    [[45, null, null], "45 %"],
  ]);
});

describe("countOf", () => {
  table(countOf, [
    [[0], 0],
    [[15], 15],
    [[1e12], 1e12],
    [[1e12 + 1], null],
    [[-1], null],
    [[1.5], null],
    [["5"], null],
    [[NaN], null],
    [[Infinity], null],
    [[null], null],
    [[undefined], null],
  ]);
});

describe("countsText", () => {
  table(countsText, [
    [[5, 15], "5/15"],
    [[0, 15], "0/15"],
    [[15, 15], "15/15"],
    [[null, 15], "0/15"],
    [[5, null], "5 done"],
    [[0, null], "0 done"],
    [[null, null], ""],
    [["5", "15"], ""],
    [[-1, 15], "0/15"],
    [[5, 1.5], "5 done"],
  ]);
});

describe("detailLine", () => {
  table(detailLine, [
    [["repo 5/15: octo/api", 5, 15], "repo 5/15: octo/api"],
    [["octo/api", 5, 15], "5/15 · octo/api"],
    [["GET /pulls?page=3", null, null], "GET /pulls?page=3"],
    [["", 5, 15], "5/15"],
    [[null, 5, null], "5 done"],
    [["  spaced  ", null, null], "spaced"],
    [["   ", null, null], ""],
    [[null, null, null], ""],
    [[{ text: "x" }, null, null], ""],
    [["12 done so far", 12, null], "12 done so far"],
    // The job names the one it is at before it counts it done: its own count of the total is the one shown.
    [["repo 1/15: octo/api", 0, 15], "repo 1/15: octo/api"],
    [["repo 1 / 15", 0, 15], "repo 1 / 15"],
    [["page 3/7", 2, 15], "2/15 · page 3/7"],
    [["repo 1/150", 0, 15], "0/15 · repo 1/150"],
    [["GET /pulls?page=3", 2, 15], "2/15 · GET /pulls?page=3"],
    [["2026/12", 2, 15], "2/15 · 2026/12"],
  ]);
});
