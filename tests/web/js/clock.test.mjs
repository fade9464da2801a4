// web/lib/clock.js: the server's clock as seen from the page, driven by explicit monotonic readings.

import { describe, it } from "node:test";
import assert from "node:assert/strict";

import { ServerClock, etaSeconds, remainingMs } from "../../../web/lib/clock.js";

const T = Date.parse("2026-03-01T12:00:00Z");
const iso = (ms) => new Date(ms).toISOString();

/** A clock that read `serverTime` T at monotonic time `mono`: its offset is T - mono. */
function clockAt(mono, serverMs = T, generation = 0) {
  const clock = new ServerClock();
  clock.note(iso(serverMs), mono, generation);
  return clock;
}

/** Runs `fn` with a Date whose wall clock (Date.now(), new Date()) throws, so any use of it fails the test;
 * Date.parse and new Date(value) still work. */
function withoutWallClock(fn) {
  const RealDate = globalThis.Date;
  class NoWallClock extends RealDate {
    constructor(...args) {
      if (args.length === 0) throw new Error("new Date() read the wall clock");
      super(...args);
    }
    static now() {
      throw new Error("Date.now() read the wall clock");
    }
  }
  globalThis.Date = NoWallClock;
  try {
    return fn();
  } finally {
    globalThis.Date = RealDate;
  }
}

/** Runs `fn` with a wall clock that says `ms` (Date.now() and new Date()). */
function withWallClockAt(ms, fn) {
  const realNow = Date.now;
  Date.now = () => ms;
  try {
    return fn();
  } finally {
    Date.now = realNow;
  }
}

describe("ServerClock", () => {
  it("knows no time before any reading", () => {
    const clock = new ServerClock();
    assert.equal(clock.now(0), null);
    assert.equal(clock.now(123456), null);
  });

  it("ignores a serverTime that is no time", () => {
    const clock = new ServerClock();
    for (const bad of [undefined, null, "", "soon", 12345, {}]) clock.note(bad, 100, 0);
    assert.equal(clock.now(100), null);
    clock.note(iso(T), 100, 0);
    clock.note("garbage", 100, 0);
    assert.equal(clock.now(100), T);
  });

  it("moves the server's now with the monotonic clock", () => {
    const clock = clockAt(1000);
    assert.equal(clock.now(1000), T);
    assert.equal(clock.now(61000), T + 60000);
  });

  // Each step: [serverTime ms, mono at arrival, generation, expected offset after it].
  const steps = [
    ["the first reading sets the offset", [[T, 1000, 0, T - 1000]]],
    [
      "later readings of a generation only raise it (a lower one was delayed on its way)",
      [
        [T, 1000, 0, T - 1000],
        [T + 500, 2000, 0, T - 1000], // arrived 500 ms late: lower estimate, ignored
        [T + 1200, 2000, 0, T - 800], // a faster trip: higher estimate, taken
        [T + 1000, 2000, 0, T - 800],
      ],
    ],
    [
      "the first reading of a new generation replaces the offset, even with a lower value",
      [
        [T, 1000, 0, T - 1000],
        [T - 60000, 2000, 1, T - 62000], // the server restarted with a clock a minute behind
        [T - 59500, 2000, 1, T - 61500], // then raised within the new generation
        [T - 70000, 3000, 1, T - 61500],
      ],
    ],
    [
      "a new generation may also jump forward",
      [
        [T, 1000, 3, T - 1000],
        [T + 3600000, 1000, 4, T + 3599000],
      ],
    ],
    [
      "the very first reading is taken whatever its generation",
      [[T, 1000, -1, T - 1000]],
    ],
  ];
  for (const [name, readings] of steps) {
    it(name, () => {
      const clock = new ServerClock();
      readings.forEach(([serverMs, mono, generation, offset], i) => {
        clock.note(iso(serverMs), mono, generation);
        assert.equal(clock.now(0), offset, `after reading ${i + 1}`);
      });
    });
  }
});

describe("remainingMs", () => {
  const rows = [
    // [name, doc, arrival, clock (or null: no reading), mono, expected]
    ["nextRunAt by the server's clock", { nextRunAt: iso(T + 300000) }, 1000, clockAt(1000), 1000, 300000],
    ["nextRunAt, some time after", { nextRunAt: iso(T + 300000) }, 1000, clockAt(1000), 61000, 240000],
    ["nextRunAt in the past", { nextRunAt: iso(T - 5000) }, 1000, clockAt(1000), 1000, -5000],
    [
      "serverTime + secondsUntilNextRun when nextRunAt is absent",
      { serverTime: iso(T), secondsUntilNextRun: 120 },
      1000,
      clockAt(1000),
      31000,
      90000,
    ],
    [
      "nextRunAt wins over secondsUntilNextRun",
      { nextRunAt: iso(T + 60000), serverTime: iso(T), secondsUntilNextRun: 999 },
      1000,
      clockAt(1000),
      1000,
      60000,
    ],
    [
      "no clock reading: secondsUntilNextRun counted down from the arrival",
      { nextRunAt: iso(T + 300000), secondsUntilNextRun: 300 },
      1000,
      new ServerClock(),
      11000,
      290000,
    ],
    ["no clock reading and no seconds: unknown", { nextRunAt: iso(T + 300000) }, 1000, new ServerClock(), 1000, null],
    ["nothing to tell", {}, 1000, clockAt(1000), 1000, null],
    ["fields of the wrong type", { nextRunAt: 5, secondsUntilNextRun: "60" }, 1000, clockAt(1000), 1000, null],
  ];
  for (const [name, doc, arrival, clock, mono, expected] of rows) {
    it(name, () => assert.equal(remainingMs(doc, arrival, clock, mono), expected));
  }
});

describe("etaSeconds", () => {
  const rows = [
    ["no eta", {}, 1000, clockAt(1000), 1000, null],
    ["eta of the wrong type", { eta: 30 }, 1000, clockAt(1000), 1000, null],
    ["eta without an estimate", { eta: {} }, 1000, clockAt(1000), 1000, null],
    ["finishAt by the server's clock", { eta: { finishAt: iso(T + 90000) } }, 1000, clockAt(1000), 11000, 80],
    [
      "finishAt wins over secondsLeft",
      { eta: { finishAt: iso(T + 90000), secondsLeft: 5 } },
      1000,
      clockAt(1000),
      1000,
      90,
    ],
    ["finishAt passed", { eta: { finishAt: iso(T - 3000) } }, 1000, clockAt(1000), 1000, -3],
    [
      "no clock reading: secondsLeft counted down from the arrival",
      { eta: { finishAt: iso(T + 90000), secondsLeft: 90 } },
      1000,
      new ServerClock(),
      31000,
      60,
    ],
    ["secondsLeft of the wrong type", { eta: { secondsLeft: "90" } }, 1000, new ServerClock(), 1000, null],
  ];
  for (const [name, doc, arrival, clock, mono, expected] of rows) {
    it(name, () => assert.equal(etaSeconds(doc, arrival, clock, mono), expected));
  }
});

describe("a page whose wall clock is wrong", () => {
  // The server says T; the page's wall clock says 1 January 1970 + 5 days, or the year 2100: the answers
  // must be those of the server's clock all the same.
  const doc = {
    serverTime: iso(T),
    nextRunAt: iso(T + 10 * 60000),
    secondsUntilNextRun: 600,
    eta: { finishAt: iso(T + 45000), secondsLeft: 45 },
  };
  for (const wall of [5 * 86400000, Date.parse("2100-01-01T00:00:00Z"), NaN]) {
    it(`reads the server's clock when Date.now() is ${new Date(wall).toString()}`, () => {
      withWallClockAt(wall, () => {
        const clock = new ServerClock();
        clock.note(doc.serverTime, 5000, 0);
        assert.equal(clock.now(5000), T);
        assert.equal(remainingMs(doc, 5000, clock, 65000), 9 * 60000);
        assert.equal(etaSeconds(doc, 5000, clock, 15000), 35);
      });
    });
  }

  it("never reads the wall clock at all", () => {
    withoutWallClock(() => {
      assert.throws(() => Date.now(), /wall clock/); // the stub is in place
      const clock = new ServerClock();
      clock.note(doc.serverTime, 5000, 0);
      clock.note(iso(T + 100), 5050, 0);
      clock.note(iso(T - 999999), 6000, 1);
      clock.note(doc.serverTime, 5000, 1);
      assert.equal(clock.now(5000), T);
      assert.equal(remainingMs(doc, 5000, clock, 65000), 9 * 60000);
      assert.equal(remainingMs({ secondsUntilNextRun: 600 }, 5000, new ServerClock(), 65000), 9 * 60000);
      assert.equal(etaSeconds(doc, 5000, clock, 15000), 35);
      assert.equal(etaSeconds({ eta: { secondsLeft: 45 } }, 5000, new ServerClock(), 15000), 35);
    });
  });
});
