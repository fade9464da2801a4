// web/lib/backoff.js: reconnection delays, with the randomness pinned.

import { describe, it } from "node:test";
import assert from "node:assert/strict";

import { Backoff, RECONNECT_MAX_MS, RECONNECT_MIN_MS } from "../../../web/lib/backoff.js";

const never = () => 0; // random() at its lowest: no jitter taken off
const delays = (backoff, n) => Array.from({ length: n }, () => backoff.next());

/** A small seeded generator in [0, 1), so the sweep below is the same on every run. */
function seeded(seed) {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

describe("Backoff", () => {
  it("doubles from min up to max, then stays at max", () => {
    assert.deepEqual(delays(new Backoff({ random: never }), 8), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert.equal(RECONNECT_MIN_MS, 1000);
    assert.equal(RECONNECT_MAX_MS, 30000);
  });

  const caps = [
    // [options, first delays]
    [{ min: 100, max: 1000 }, [100, 200, 400, 800, 1000, 1000]],
    [{ min: 500, max: 500 }, [500, 500, 500]],
    [{ min: 1, max: 5 }, [1, 2, 4, 5, 5]],
    [{ min: 250, max: 1100 }, [250, 500, 1000, 1100, 1100]],
  ];
  for (const [options, expected] of caps) {
    it(`min ${options.min}, max ${options.max}: ${expected.join(", ")}`, () => {
      assert.deepEqual(delays(new Backoff({ ...options, random: never }), expected.length), expected);
    });
  }

  it("stays at max after very many attempts (no overflow to Infinity or NaN)", () => {
    const backoff = new Backoff({ random: never });
    const all = delays(backoff, 2000);
    assert.equal(all.at(-1), RECONNECT_MAX_MS);
    assert.ok(all.every((d) => Number.isFinite(d) && d <= RECONNECT_MAX_MS));
  });

  const jitters = [
    // [jitter, random(), first three delays]
    [0.2, 0, [1000, 2000, 4000]],
    [0.2, 0.5, [900, 1800, 3600]],
    [0.2, 0.999999, [800, 1600, 3200]],
    [0.5, 0.5, [750, 1500, 3000]],
    [0, 0.9, [1000, 2000, 4000]],
    [1, 0.25, [750, 1500, 3000]],
    [7, 0.5, [500, 1000, 2000]], // above 1: taken as 1
    [-3, 0.9, [1000, 2000, 4000]], // below 0: taken as 0
  ];
  for (const [jitter, value, expected] of jitters) {
    it(`jitter ${jitter} with random() = ${value}: ${expected.join(", ")}`, () => {
      assert.deepEqual(delays(new Backoff({ jitter, random: () => value }), 3), expected);
    });
  }

  it("jitter never takes a delay above its base, nor below base × (1 - jitter)", () => {
    const random = seeded(42);
    for (const jitter of [0, 0.1, 0.2, 0.5, 1]) {
      const backoff = new Backoff({ min: 300, max: 20000, jitter, random });
      const pinned = new Backoff({ min: 300, max: 20000, random: never });
      for (let i = 0; i < 200; i++) {
        const base = pinned.next();
        const delay = backoff.next();
        assert.ok(delay <= base, `jitter ${jitter}, attempt ${i}: ${delay} > ${base}`);
        assert.ok(delay >= Math.floor(base * (1 - jitter)), `jitter ${jitter}, attempt ${i}: ${delay} too low`);
      }
    }
  });

  it("uses Math.random by default, and stays within the bounds", () => {
    const backoff = new Backoff();
    for (const base of [1000, 2000, 4000, 8000, 16000, 30000, 30000]) {
      const delay = backoff.next();
      assert.ok(delay <= base && delay >= base * 0.8, `${delay} outside ${base * 0.8}..${base}`);
    }
  });

  it("reset starts again from min", () => {
    const backoff = new Backoff({ random: never });
    assert.deepEqual(delays(backoff, 4), [1000, 2000, 4000, 8000]);
    backoff.reset();
    assert.deepEqual(delays(backoff, 3), [1000, 2000, 4000]);
    delays(backoff, 50);
    backoff.reset();
    assert.equal(backoff.next(), 1000);
  });

  const bad = [
    ["min 0", { min: 0 }],
    ["a negative min", { min: -1000 }],
    ["max below min", { min: 2000, max: 1000 }],
    ["a NaN min", { min: NaN }],
    ["a NaN max", { max: NaN }],
    ["an infinite max", { max: Infinity }],
    ["an infinite min and max", { min: Infinity, max: Infinity }],
    ["min as a string", { min: "1000" }],
    ["max as a string", { max: "30000" }],
    ["min null", { min: null }],
    ["a NaN jitter", { jitter: NaN }],
    ["jitter as a string", { jitter: "0.2" }],
    ["random not a function", { random: 0.5 }],
  ];
  for (const [name, options] of bad) {
    it(`refuses ${name}`, () => {
      assert.throws(() => new Backoff(options), (e) => e instanceof RangeError || e instanceof TypeError);
    });
  }
});
