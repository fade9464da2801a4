/* How long to wait before the next reconnection: doubling from `min` to `max`, with jitter so that a
 * hundred pages cut off by one restart do not all come back in the same second. Pure: `random` is passed in
 * (Math.random by default), so node tests pin it. */

export const RECONNECT_MIN_MS = 1000;
export const RECONNECT_MAX_MS = 30000;

export class Backoff {
  constructor({ min = RECONNECT_MIN_MS, max = RECONNECT_MAX_MS, jitter = 0.2, random = Math.random } = {}) {
    // A NaN or infinite delay would reach setTimeout as 0 (an infinite one overflows): a retry loop with no
    // pause at all. Refuse such settings here rather than hammer the server later.
    if (!Number.isFinite(min) || !Number.isFinite(max) || !(min > 0) || !(max >= min)) {
      throw new RangeError("Backoff needs finite numbers 0 < min <= max");
    }
    if (typeof jitter !== "number" || Number.isNaN(jitter)) throw new RangeError("Backoff's jitter is a number");
    if (typeof random !== "function") throw new TypeError("Backoff's random is a function");
    this.min = min;
    this.max = max;
    this.jitter = Math.min(Math.max(jitter, 0), 1);
    this.random = random;
    this.attempt = 0;
  }

  /** The delay before the next attempt, in ms; each call doubles the base, up to `max`. */
  next() {
    const base = Math.min(this.max, this.min * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    // Up to `jitter` of the base less, never more: the cap stays a cap.
    return Math.round(base * (1 - this.jitter * this.random()));
  }

  /** A connection held: the next failure starts from `min` again. */
  reset() {
    this.attempt = 0;
  }
}
