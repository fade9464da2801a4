// web/lib/demux.js: which feed gets which status document of the stream of every job, what GET /api/jobs
// says about the service, and the list of jobs the page keeps; as tables.

import { describe, it } from "node:test";
import assert from "node:assert/strict";

import {
  ALL_JOBS, DEFAULT_KEY, JobDirectory, discoveryOutcome, feedKey, isJobName, listChanges, otherJobs,
} from "../../../web/lib/demux.js";

const doc = (job) => ({ job, running: false });
const jobs = (...names) => ({ jobs: names.map(doc), defaultJob: names[0] });

/** A directory that read `body` from GET /api/jobs. */
function directory(body = jobs("snapshot", "report", "backup")) {
  const dir = new JobDirectory();
  dir.learn(discoveryOutcome(200, body));
  return dir;
}

describe("feedKey", () => {
  const rows = [
    [null, DEFAULT_KEY],
    [undefined, DEFAULT_KEY],
    ["", DEFAULT_KEY],
    ["report", "report"],
    ["snapshot", "snapshot"], // a job named in the attribute is that job, even the default one's name
    [5, DEFAULT_KEY],
  ];
  for (const [job, key] of rows) {
    it(`${JSON.stringify(job)} → ${JSON.stringify(key)}`, () => assert.equal(feedKey(job), key));
  }
});

describe("isJobName", () => {
  const rows = [["report", true], ["", false], [null, false], [5, false], ["*", false], ["x".repeat(63), true],
    ["x".repeat(64), false], [{}, false]];
  for (const [value, expected] of rows) {
    it(`${JSON.stringify(value)} → ${expected}`, () => assert.equal(isJobName(value), expected));
  }
});

describe("discoveryOutcome", () => {
  const rows = [
    // [name, status, body, expected]
    ["several jobs", 200, jobs("snapshot", "report"), { kind: "jobs", defaultJob: "snapshot", jobs: ["snapshot", "report"] }],
    ["one job", 200, jobs("snapshot"), { kind: "jobs", defaultJob: "snapshot", jobs: ["snapshot"] }],
    [
      "the default job is not the first",
      200,
      { jobs: [doc("a"), doc("b")], defaultJob: "b" },
      { kind: "jobs", defaultJob: "b", jobs: ["a", "b"] },
    ],
    [
      "a default job missing from the list is put first",
      200,
      { jobs: [doc("a")], defaultJob: "b" },
      { kind: "jobs", defaultJob: "b", jobs: ["b", "a"] },
    ],
    [
      "documents without a name, and twice the same, are left out",
      200,
      { jobs: [doc("a"), {}, null, 7, doc(5), doc("a"), doc("c")], defaultJob: "a" },
      { kind: "jobs", defaultJob: "a", jobs: ["a", "c"] },
    ],
    ["an older service: 404", 404, { message: "no such path" }, { kind: "legacy" }],
    ["an answer that is no list of jobs", 200, { hello: "world" }, { kind: "legacy" }],
    ["not JSON at all", 200, undefined, { kind: "legacy" }],
    ["jobs that are no array", 200, { jobs: {}, defaultJob: "a" }, { kind: "legacy" }],
    ["no default job", 200, { jobs: [doc("a")] }, { kind: "legacy" }],
    ["a token wanted", 401, { message: "token" }, { kind: "unauthorized" }],
    ["the service's trouble", 503, undefined, { kind: "offline" }],
    ["a redirect left unfollowed", 302, undefined, { kind: "offline" }],
  ];
  for (const [name, status, body, expected] of rows) {
    it(name, () => assert.deepEqual(discoveryOutcome(status, body), expected));
  }
});

describe("JobDirectory.route", () => {
  const dir = directory();
  const rows = [
    // [doc, keys]
    [doc("snapshot"), [ALL_JOBS, "snapshot", DEFAULT_KEY]],
    [doc("report"), [ALL_JOBS, "report"]],
    [doc("new-job"), [ALL_JOBS, "new-job"]],
    [{ running: false }, [ALL_JOBS, DEFAULT_KEY]], // a service's only job, from before several jobs
    [doc(""), [ALL_JOBS, DEFAULT_KEY]],
    [doc(7), [ALL_JOBS, DEFAULT_KEY]],
    [doc("*"), [ALL_JOBS, DEFAULT_KEY]], // never the key of every job itself
  ];
  for (const [value, keys] of rows) {
    it(`${JSON.stringify(value.job)} → ${JSON.stringify(keys)}`, () => assert.deepEqual(dir.route(value), keys));
  }

  it("the default job follows what the service says", () => {
    const other = directory({ jobs: [doc("snapshot"), doc("report")], defaultJob: "report" });
    assert.deepEqual(other.route(doc("report")), [ALL_JOBS, "report", DEFAULT_KEY]);
    assert.deepEqual(other.route(doc("snapshot")), [ALL_JOBS, "snapshot"]);
  });

  it("before the list is known, no document is the default job's but one without a job", () => {
    const dir = new JobDirectory();
    assert.deepEqual(dir.route(doc("snapshot")), [ALL_JOBS, "snapshot"]);
    assert.deepEqual(dir.route({}), [ALL_JOBS, DEFAULT_KEY]);
  });
});

describe("JobDirectory's list", () => {
  it("learns the list, and says when it changed", () => {
    const dir = new JobDirectory();
    assert.equal(dir.learn(discoveryOutcome(200, jobs("a", "b"))), true);
    assert.equal(dir.learn(discoveryOutcome(200, jobs("a", "b"))), false);
    assert.equal(dir.learn(discoveryOutcome(200, jobs("a"))), true); // b was removed by a reload
    assert.deepEqual(dir.view(), { defaultJob: "a", jobs: ["a"], several: false });
  });

  it("notes a job seen on the stream once, and only once the list is known", () => {
    const unknown = new JobDirectory();
    assert.equal(unknown.note("c"), false);
    const dir = directory(jobs("a", "b"));
    assert.equal(dir.note("c"), true);
    assert.equal(dir.note("c"), false);
    assert.equal(dir.note("a"), false);
    assert.equal(dir.note(null), false);
    assert.equal(dir.note(""), false);
    assert.deepEqual(dir.view(), { defaultJob: "a", jobs: ["a", "b", "c"], several: true });
  });

  it("says which feeds name a job the service does not have", () => {
    const dir = directory(jobs("a", "b"));
    assert.equal(dir.missing("a"), false);
    assert.equal(dir.missing("nightly"), true);
    assert.equal(dir.missing(DEFAULT_KEY), false);
    assert.equal(dir.missing(ALL_JOBS), false);
    dir.note("nightly"); // added by a reload: it shows up on the stream
    assert.equal(dir.missing("nightly"), false);
    assert.equal(new JobDirectory().missing("nightly"), false); // nothing is missing before the list is read
  });

  it("forgets the list for an older service", () => {
    const dir = directory(jobs("a", "b"));
    assert.equal(dir.forget(), true);
    assert.equal(dir.forget(), false);
    assert.deepEqual(dir.view(), { defaultJob: null, jobs: [], several: false });
    assert.equal(dir.missing("a"), false);
  });

  it("the view is a copy", () => {
    const dir = directory(jobs("a", "b"));
    dir.view().jobs.push("x");
    assert.deepEqual(dir.view().jobs, ["a", "b"]);
  });
});

describe("otherJobs and listChanges", () => {
  it("lists every job but the default one, in order", () => {
    assert.deepEqual(otherJobs({ defaultJob: "b", jobs: ["a", "b", "c"] }), ["a", "c"]);
    assert.deepEqual(otherJobs({ defaultJob: "a", jobs: ["a"] }), []);
    assert.deepEqual(otherJobs({ defaultJob: null, jobs: [] }), []);
  });

  const rows = [
    // [shown, wanted, expected]
    [[], ["a", "b"], { add: ["a", "b"], remove: [] }],
    [["a", "b"], ["a", "b"], { add: [], remove: [] }],
    [["a", "b"], ["a", "b", "c"], { add: ["c"], remove: [] }],
    [["a", "b"], ["b"], { add: [], remove: ["a"] }],
    [["a"], [], { add: [], remove: ["a"] }],
  ];
  for (const [shown, wanted, expected] of rows) {
    it(`${JSON.stringify(shown)} → ${JSON.stringify(wanted)}`, () => assert.deepEqual(listChanges(shown, wanted), expected));
  }
});
