// web/lib/history-view.js: the history's rows from the runs read and the status documents of one job or of
// every job, when to read again, and where from; as tables.

import { describe, it } from "node:test";
import assert from "node:assert/strict";

import {
  docsOf, filterChoices, historyKey, isRunningNow, keptFilter, runningRuns, runsPath, shownRuns, validRuns, withJob,
} from "../../../web/lib/history-view.js";

const run = (runId, fields = {}) => ({ runId, status: "completed", ...fields });
const doc = (job, fields = {}) => ({ job, running: false, currentRun: null, lastRun: null, ...fields });

/** A feed of every job (stream.js) holding `docs`. */
function allFeed(...docs) {
  return { doc: docs.at(-1) ?? null, docs: new Map(docs.map((d) => [d.job ?? "", d])) };
}

describe("validRuns", () => {
  it("keeps records with a runId", () => {
    assert.deepEqual(validRuns([run("a"), null, 5, [], { runId: 7 }, { status: "x" }, run("b")]), [run("a"), run("b")]);
    assert.deepEqual(validRuns("runs"), []);
  });
});

describe("docsOf", () => {
  const a = doc("a");
  const b = doc("b");
  const rows = [
    // [name, feed, options, expected]
    ["no feed yet", null, { named: false, several: false, filter: "" }, []],
    ["a named job's feed", { doc: a }, { named: true, several: false, filter: "" }, [a]],
    ["a named job's feed before its document", { doc: null }, { named: true, several: false, filter: "" }, []],
    ["one job: its document", allFeed(a), { named: false, several: false, filter: "" }, [a]],
    ["several jobs: all of them", allFeed(a, b), { named: false, several: true, filter: "" }, [a, b]],
    ["several jobs, one chosen", allFeed(a, b), { named: false, several: true, filter: "b" }, [b]],
    ["a filter is no filter with one job", allFeed(a), { named: false, several: false, filter: "b" }, [a]],
  ];
  for (const [name, feed, options, expected] of rows) {
    it(name, () => assert.deepEqual(docsOf(feed, options), expected));
  }
});

describe("historyKey", () => {
  const a1 = doc("a", { lastRun: run("r1") });
  const b1 = doc("b", { currentRun: { runId: "r2", status: "running" } });
  it("changes with the connection, and with each job's last and current run", () => {
    const key = historyKey(1, [a1, b1]);
    assert.equal(historyKey(1, [a1, b1]), key);
    assert.equal(historyKey(1, [b1, a1]), key); // the order the documents came in does not matter
    assert.notEqual(historyKey(2, [a1, b1]), key);
    assert.notEqual(historyKey(1, [a1, doc("b")]), key); // b's run ended
    assert.notEqual(historyKey(1, [doc("a", { lastRun: run("r1", { status: "error" }) }), b1]), key);
    assert.notEqual(historyKey(1, [a1]), key);
  });

  it("a new detail or percent of a running run changes nothing", () => {
    const running = (progress) => doc("a", { currentRun: { runId: "r3" }, progress: { progress } });
    assert.equal(historyKey(1, [running(10)]), historyKey(1, [running(60)]));
  });

  it("takes hostile documents", () => {
    assert.equal(typeof historyKey(0, [doc("a", { lastRun: [], currentRun: "x" }), {}]), "string");
  });
});

describe("withJob and runningRuns", () => {
  it("names a record's job from its document when the record does not", () => {
    assert.deepEqual(withJob(run("r"), doc("a")), run("r", { job: "a" }));
    assert.deepEqual(withJob(run("r", { job: "b" }), doc("a")), run("r", { job: "b" }));
    assert.deepEqual(withJob(run("r"), {}), run("r"));
  });

  it("lists the running runs newest first", () => {
    const docs = [
      doc("a", { currentRun: { runId: "ra", startedAt: "2026-03-01T10:00:00Z" } }),
      doc("b", { currentRun: { runId: "rb", startedAt: "2026-03-01T11:00:00Z" } }),
      doc("c"),
      doc("d", { currentRun: { runId: 5 } }),
    ];
    assert.deepEqual(runningRuns(docs).map((r) => [r.runId, r.job]), [["rb", "b"], ["ra", "a"]]);
  });
});

describe("shownRuns", () => {
  const read = [run("r3", { job: "a" }), run("r2", { job: "b", status: "running" }), run("r1", { job: "a" })];
  const live = { live: true, available: true };

  it("one job, as before: the running run on top, the last run's record the stream's", () => {
    const d = doc(undefined, { currentRun: { runId: "r4", status: "running" }, lastRun: run("r3", { reason: "new" }) });
    const rows = shownRuns([run("r3"), run("r1")], [d], live);
    assert.deepEqual(rows.map((r) => r.runId), ["r4", "r3", "r1"]);
    assert.equal(rows[1].reason, "new");
  });

  it("several jobs: every running run on top, newest first, each once", () => {
    const docs = [
      doc("a", { currentRun: { runId: "r5", status: "running", startedAt: "2026-03-01T10:05:00Z" } }),
      doc("b", { currentRun: { runId: "r2", status: "running", startedAt: "2026-03-01T10:00:00Z" } }),
    ];
    const rows = shownRuns(read, docs, live);
    assert.deepEqual(rows.map((r) => [r.runId, r.job]), [["r5", "a"], ["r2", "b"], ["r3", "a"], ["r1", "a"]]);
  });

  it("a run that just ended: the stream's record replaces the one read, with its job", () => {
    const docs = [doc("b", { lastRun: run("r2", { status: "error", error: "boom" }) })];
    const rows = shownRuns(read, docs, live);
    assert.deepEqual(rows[1], run("r2", { status: "error", error: "boom", job: "b" }));
  });

  it("no running run from the stream while it is down, or when the service keeps no history", () => {
    const docs = [doc("a", { currentRun: { runId: "r9", status: "running" } })];
    assert.deepEqual(shownRuns(read, docs, { live: false, available: true }).map((r) => r.runId), ["r3", "r2", "r1"]);
    assert.deepEqual(shownRuns([], docs, { live: true, available: false }), []);
  });
});

describe("isRunningNow", () => {
  const docs = [doc("a", { currentRun: { runId: "r2" } }), doc("b")];
  it("a running record is running while some job runs it, else it was cut off", () => {
    assert.equal(isRunningNow(run("r2", { status: "running" }), docs), true);
    assert.equal(isRunningNow(run("r1", { status: "running" }), docs), false);
    assert.equal(isRunningNow(run("r1"), []), false);
  });
});

describe("runsPath", () => {
  const rows = [
    // [several, filter, query, path]
    [false, "", "?limit=20", "runs?limit=20"],
    [false, "report", "?limit=20", "runs?limit=20"],
    [true, "", "?limit=20", "/api/runs?limit=20"],
    [true, "report", "?limit=20", "/api/runs?limit=20&job=report"],
    [true, "a b&c", "?limit=20&cursor=x", "/api/runs?limit=20&cursor=x&job=a%20b%26c"],
  ];
  for (const [several, filter, query, path] of rows) {
    it(`${several} ${JSON.stringify(filter)} ${query} → ${path}`, () => {
      assert.equal(runsPath(several, filter, query), path);
    });
  }
});

describe("the job filter", () => {
  it("offers every job, then each by name", () => {
    assert.deepEqual(filterChoices(["a", "b"]), [
      { value: "", label: "All jobs" },
      { value: "a", label: "a" },
      { value: "b", label: "b" },
    ]);
  });

  const rows = [["a", ["a", "b"], "a"], ["c", ["a", "b"], ""], ["", ["a"], ""], ["a", [], ""]];
  for (const [filter, jobs, kept] of rows) {
    it(`keptFilter(${JSON.stringify(filter)}, ${JSON.stringify(jobs)}) → ${JSON.stringify(kept)}`, () => {
      assert.equal(keptFilter(filter, jobs), kept);
    });
  }
});
