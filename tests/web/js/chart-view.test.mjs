// web/lib/chart-view.js: the step chart's figures, words and geometry, as tables.

import { describe, it } from "node:test";
import assert from "node:assert/strict";

import {
  CHART_MAX_BARS, NARROW_PX, P90_ROOM, chartGeometry, chartModel, chartSteps, chartTexts, fitText, shareText,
  shownSteps,
} from "../../../web/lib/chart-view.js";

/** A statistics answer's step. */
function stat(name, median, extra = {}) {
  return { name, runs: 20, medianSeconds: median, p90Seconds: median * 1.2, share: 0.1, latestSeconds: median,
    slow: false, ...extra };
}

const STATS = {
  runs: 20, runIds: [], medianRunSeconds: 1200, latestRunId: "r0",
  steps: [
    stat("Starting", 1, { p90Seconds: 2, share: 0.001 }),
    stat("Fetching GitHub PRs", 720, { p90Seconds: 800, share: 0.6, latestSeconds: 1100, slow: true }),
    stat("Computing stats", 360, { p90Seconds: 1000, share: 0.3 }),
  ],
};

describe("chartSteps", () => {
  it("keeps the figures of each step, in order", () => {
    assert.deepEqual(chartSteps(STATS).map((s) => [s.name, s.median, s.p90, s.share, s.latest, s.slow, s.runs]), [
      ["Starting", 1, 2, 0.001, 1, false, 20],
      ["Fetching GitHub PRs", 720, 800, 0.6, 1100, true, 20],
      ["Computing stats", 360, 1000, 0.3, 360, false, 20],
    ]);
  });
  const table = [
    // [name, step, expected [median, p90, share, latest, slow] or null (left out)]
    ["no median", { name: "A" }, null],
    ["a median that is a string", stat("A", "5"), null],
    ["a negative median", stat("A", -1), null],
    ["a name that is no string", { ...stat("A", 1), name: 7 }, null],
    ["a p90 below the median is dropped", stat("A", 10, { p90Seconds: 5 }), [10, null, 0.1, 10, false]],
    ["a share above 1 is dropped", stat("A", 10, { share: 1.5 }), [10, 12, null, 10, false]],
    ["a negative latest is dropped", stat("A", 10, { latestSeconds: -2 }), [10, 12, 0.1, null, false]],
    ["slow only when true", stat("A", 10, { slow: "yes" }), [10, 12, 0.1, 10, false]],
    ["a zero median", stat("A", 0, { p90Seconds: 0 }), [0, 0, 0.1, 0, false]],
  ];
  for (const [name, given, expected] of table) {
    it(name, () => {
      const steps = chartSteps({ steps: [given] });
      assert.deepEqual(steps.map((s) => [s.median, s.p90, s.share, s.latest, s.slow]), expected === null ? [] : [expected]);
    });
  }
  it("a name twice: the first wins", () => {
    assert.deepEqual(chartSteps({ steps: [stat("A", 1), stat("A", 9)] }).map((s) => s.median), [1]);
  });
  for (const body of [null, {}, { steps: null }, { steps: "x" }, { steps: [null, [], "A"] }]) {
    it("nothing to chart in " + JSON.stringify(body), () => assert.deepEqual(chartSteps(body), []));
  }
});

describe("shareText", () => {
  const table = [[null, ""], [0, "0 %"], [0.001, "< 1 %"], [0.005, "1 %"], [0.6, "60 %"], [0.604, "60 %"], [1, "100 %"]];
  for (const [share, expected] of table) it(`${share} → ${expected}`, () => assert.equal(shareText(share), expected));
});

describe("fitText", () => {
  const table = [
    ["Fetching GitHub PRs", 40, "Fetching GitHub PRs"],
    ["Fetching GitHub PRs", 19, "Fetching GitHub PRs"],
    ["Fetching GitHub PRs", 10, "Fetching …"],
    ["Fetching GitHub PRs", 10.9, "Fetching …"],
    ["Fetching GitHub PRs", 1, "Fet…"], // never fewer than four characters
    ["naïve 🙂 step", 8, "naïve 🙂…"], // characters, not UTF-16 units
  ];
  for (const [name, chars, expected] of table) {
    it(`${name} in ${chars}`, () => assert.equal(fitText(name, chars), expected));
  }
});

describe("chartTexts", () => {
  it("sums the chart up and lists every figure", () => {
    const texts = chartTexts(STATS, chartSteps(STATS));
    assert.equal(texts.caption,
      "Median and 90th-percentile duration of each step over the last 20 runs; a whole run: 20 min (median)");
    assert.equal(texts.summary, "Median duration per step over the last 20 runs. Longest: Fetching GitHub PRs, 12 min"
      + " (60 % of the time). Slower than usual in the latest run: Fetching GitHub PRs.");
    assert.deepEqual(texts.table, [
      { name: "Starting", median: "1 s", p90: "2 s", share: "< 1 %", latest: "1 s" },
      { name: "Fetching GitHub PRs", median: "12 min", p90: "13 min", share: "60 %", latest: "18 min (slower than usual)" },
      { name: "Computing stats", median: "6 min", p90: "16 min", share: "30 %", latest: "6 min" },
    ]);
  });
  const captions = [
    [{ runs: 1 }, "Median and 90th-percentile duration of each step over the last run"],
    [{ runs: 0 }, "Median and 90th-percentile duration of each step over recent runs"],
    [null, "Median and 90th-percentile duration of each step over recent runs"],
  ];
  for (const [stats, caption] of captions) {
    it("caption of " + JSON.stringify(stats), () => assert.equal(chartTexts(stats, []).caption, caption));
  }
  it("says no summary for no steps", () => assert.equal(chartTexts(STATS, []).summary, ""));
  it("leaves out the share and the slow steps when unknown or none", () => {
    const steps = chartSteps({ steps: [stat("A", 5, { share: null })] });
    assert.equal(chartTexts({ runs: 3 }, steps).summary, "Median duration per step over the last 3 runs. Longest: A, 5 s.");
  });
});

describe("shownSteps", () => {
  const many = Array.from({ length: 30 }, (_, i) => ({ name: "s" + i, median: (i * 7) % 30 }));
  it("all of them when they are few", () => assert.equal(shownSteps(many.slice(0, 5)).length, 5));
  it("the longest ones, in their order, when they are many", () => {
    const shown = shownSteps(many, 4);
    assert.deepEqual(shown.map((s) => [s.name, s.median]), [["s4", 28], ["s8", 26], ["s17", 29], ["s21", 27]]);
  });
  it("at most CHART_MAX_BARS by default", () => assert.equal(shownSteps(many).length, CHART_MAX_BARS));
});

describe("chartGeometry", () => {
  const steps = chartSteps(STATS);
  for (const width of [1000, 700, NARROW_PX, NARROW_PX - 1, 390, 200]) {
    describe(`at ${width} px`, () => {
      const g = chartGeometry(steps, { width, fontSize: 13 });
      it("is as wide as asked, one row per step, rows one under the other", () => {
        assert.equal(g.width, width);
        assert.equal(g.rows.length, 3);
        assert.equal(g.narrow, width < NARROW_PX);
        for (let i = 1; i < g.rows.length; i++) assert.ok(g.rows[i].barY > g.rows[i - 1].barY + g.rows[i - 1].barHeight);
        assert.ok(g.height >= g.rows[2].barY + g.rows[2].barHeight);
      });
      it("scales the bars to the longest median, and keeps every mark and value inside", () => {
        const [, longest, other] = g.rows;
        assert.ok(Math.abs(other.barWidth / longest.barWidth - 0.5) < 0.01, `${other.barWidth} / ${longest.barWidth}`);
        for (const row of g.rows) {
          assert.ok(row.barX >= 0 && row.barX + row.barWidth <= width, JSON.stringify(row));
          assert.ok(row.p90X === null || (row.p90X >= row.barX + row.barWidth - 0.1 && row.p90X <= width), JSON.stringify(row));
          assert.ok(row.valueX >= row.barX + row.barWidth, JSON.stringify(row));
          assert.ok(row.valueX + 13 * 0.6 * row.value.length <= width + 0.5, `${row.value} at ${row.valueX}`);
        }
      });
      it("puts a name above its bar when narrow, beside it when not, cut to fit either way", () => {
        for (const row of g.rows) {
          if (g.narrow) assert.ok(row.labelY < row.barY, JSON.stringify(row));
          else assert.ok(row.labelY > row.barY && row.labelY < row.barY + row.barHeight, JSON.stringify(row));
          const room = g.narrow ? width : row.barX;
          assert.ok(Array.from(row.label).length * 13 * 0.6 <= Math.max(room, 4 * 13 * 0.6) + 0.5, row.label);
        }
      });
    });
  }
  it("clips a p90 far beyond the longest median at its room, and says so", () => {
    const g = chartGeometry(chartSteps(STATS), { width: 1000 });
    const [starting, prs, stats] = g.rows;
    assert.equal(prs.p90Clipped, false); // 800 / 720 < P90_ROOM
    assert.equal(stats.p90Clipped, true); // 1000 / 720 > P90_ROOM
    assert.equal(starting.p90Clipped, false);
    assert.ok(Math.abs((stats.p90X - stats.barX) / prs.barWidth - P90_ROOM) < 0.01);
  });
  it("flags the slow steps in words", () => {
    const g = chartGeometry(chartSteps(STATS), { width: 1000 });
    assert.deepEqual(g.rows.map((r) => [r.value, r.slow]), [["1 s", false], ["12 min · slow", true], ["6 min", false]]);
    assert.equal(g.rows[1].title, "Fetching GitHub PRs: median 12 min, p90 13 min; slower than usual in the latest run");
  });
  it("cuts a long name and keeps it whole in the title", () => {
    const name = "Fetching CI results for every open pull request of every repository in the organisation";
    const [row] = chartGeometry(chartSteps({ steps: [stat(name, 5)] }), { width: 800 }).rows;
    assert.ok(row.label.endsWith("…") && row.label.length < name.length, row.label);
    assert.ok(row.title.startsWith(name + ":"));
  });
  it("draws no bar for a zero median, and a sliver for a tiny one", () => {
    const g = chartGeometry(chartSteps({ steps: [stat("A", 0), stat("B", 0.001), stat("C", 1000)] }), { width: 800 });
    assert.deepEqual(g.rows.map((r) => r.barWidth > 0), [false, true, true]);
    assert.ok(g.rows[1].barWidth >= 1);
  });
  it("all zero medians: no bars, nothing divided by zero", () => {
    const g = chartGeometry(chartSteps({ steps: [stat("A", 0), stat("B", 0)] }), { width: 800 });
    assert.deepEqual(g.rows.map((r) => [r.barWidth, r.p90Clipped]), [[0, false], [0, false]]);
    for (const r of g.rows) assert.ok(Number.isFinite(r.valueX));
  });
  for (const width of [0, null, undefined, "wide", -5]) {
    it(`a width of ${width} still draws (at the least width)`, () => {
      assert.equal(chartGeometry(chartSteps(STATS), { width }).width, 160);
    });
  }
});

describe("chartModel", () => {
  it("has the words, the geometry and no note for a few steps", () => {
    const model = chartModel(STATS, { width: 800 });
    assert.equal(model.empty, false);
    assert.equal(model.note, "");
    assert.equal(model.geometry.rows.length, 3);
    assert.equal(model.table.length, 3);
  });
  it("says when there is nothing to chart", () => {
    const model = chartModel({ runs: 0, steps: [] }, { width: 800 });
    assert.equal(model.empty, true);
    assert.equal(model.note, "No completed run with steps yet");
    assert.deepEqual(model.geometry.rows, []);
  });
  it("draws the longest bars of many steps and lists them all in the table", () => {
    const steps = Array.from({ length: 40 }, (_, i) => stat("step " + i, i + 1));
    const model = chartModel({ runs: 5, steps }, { width: 800 });
    assert.equal(model.geometry.rows.length, CHART_MAX_BARS);
    assert.equal(model.geometry.rows[0].name, "step 15");
    assert.equal(model.table.length, 40);
    assert.equal(model.note, "The 25 longest of 40 steps; the table lists them all");
  });
  it("needs no options", () => assert.equal(chartModel(null).empty, true));
});
