// web/lib/refetch.js: one document fetched again when its key changes, one request at a time, as scripts of
// wants and answers. Requests are promises the test resolves by hand, so the order is the test's.

import { describe, it } from "node:test";
import assert from "node:assert/strict";

import { Refetch } from "../../../web/lib/refetch.js";

/** A Refetch whose requests wait for the test: `asked` lists each request's arg, `answer(i, value)`
 * resolves request i, `delivered` lists [answer, key] in the order delivered. */
function harness() {
  const asked = [];
  const pending = [];
  const delivered = [];
  const refetch = new Refetch(
    (arg) => new Promise((resolve, reject) => {
      asked.push(arg);
      pending.push({ resolve, reject });
    }),
    (answer, key) => delivered.push([answer, key]),
  );
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  return {
    refetch, asked, delivered, settle,
    async answer(i, value) {
      pending[i].resolve(value);
      await settle();
    },
    async fail(i) {
      pending[i].reject(new Error("boom"));
      await settle();
    },
  };
}

describe("Refetch", () => {
  it("fetches for a new key and delivers the answer", async () => {
    const t = harness();
    assert.equal(t.refetch.want("a", "run-a"), true);
    assert.deepEqual(t.asked, ["run-a"]);
    await t.answer(0, "A");
    assert.deepEqual(t.delivered, [["A", "a"]]);
  });

  it("asks nothing for the key it has", async () => {
    const t = harness();
    t.refetch.want("a");
    await t.answer(0, "A");
    assert.equal(t.refetch.want("a"), false);
    assert.deepEqual(t.asked, ["a"]);
  });

  const scripts = [
    // [name, keys wanted while the first request is out, the requests asked after it is answered]
    ["one change while out: fetched once after", ["b"], ["a", "b"]],
    ["many changes while out: only the last, once", ["b", "c", "d"], ["a", "d"]],
    ["a change back to the key out: asked again (it may be stale by now)", ["b", "a"], ["a", "a"]],
    ["no change while out: nothing more", [], ["a"]],
  ];
  for (const [name, keys, expected] of scripts) {
    it(name, async () => {
      const t = harness();
      t.refetch.want("a");
      for (const key of keys) t.refetch.want(key);
      assert.deepEqual(t.asked, ["a"]); // never two requests at once
      await t.answer(0, "A");
      assert.deepEqual(t.asked, expected);
      assert.deepEqual(t.delivered, [["A", "a"]]);
    });
  }

  it("delivers every answer in order, each with the key it was asked for", async () => {
    const t = harness();
    t.refetch.want("a");
    t.refetch.want("b");
    await t.answer(0, "A");
    await t.answer(1, "B");
    assert.deepEqual(t.delivered, [["A", "a"], ["B", "b"]]);
  });

  it("a key that changes with every answer still lands every answer", async () => {
    const t = harness();
    t.refetch.want("k0");
    for (let i = 1; i <= 5; i++) {
      t.refetch.want("k" + i);
      await t.answer(i - 1, "A" + (i - 1));
    }
    await t.answer(5, "A5");
    assert.deepEqual(t.delivered.map(([, key]) => key), ["k0", "k1", "k2", "k3", "k4", "k5"]);
  });

  it("reset: the same key is fetched again", async () => {
    const t = harness();
    t.refetch.want("a");
    await t.answer(0, "A");
    t.refetch.reset();
    assert.equal(t.refetch.want("a"), true);
    assert.deepEqual(t.asked, ["a", "a"]);
  });

  it("close: no answer is delivered and nothing more is asked", async () => {
    const t = harness();
    t.refetch.want("a");
    t.refetch.want("b");
    t.refetch.close();
    await t.answer(0, "A");
    assert.deepEqual(t.delivered, []);
    assert.deepEqual(t.asked, ["a"]);
    assert.equal(t.refetch.want("c"), false);
  });

  it("a request that throws delivers nothing and blocks nothing", async (ctx) => {
    ctx.mock.method(console, "error", () => {});
    const t = harness();
    t.refetch.want("a");
    t.refetch.want("b");
    await t.fail(0);
    assert.deepEqual(t.asked, ["a", "b"]);
    await t.answer(1, "B");
    assert.deepEqual(t.delivered, [["B", "b"]]);
  });
});
