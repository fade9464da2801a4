/* The server's clock, as seen from the page.
 *
 * The browser's wall clock is never compared with the server's times (it may be minutes off). Every status
 * document carries `serverTime`; `serverTime - performance.now()` at the moment it arrives is an estimate of
 * the offset between the server's clock and the page's monotonic clock: an underestimate by the network
 * delay and by how long the document waited before it was sent. The largest estimate of a connection wins,
 * so the server's "now" is `performance.now() + offset`. The first estimate of a new connection replaces the
 * old one: the server may have restarted with another clock.
 *
 * Pure: the monotonic reading (`mono`, performance.now()) is always passed in, so node tests drive it. */

import { isObject, parseTime, toNumber } from "./format.js";

export class ServerClock {
  constructor() {
    this.offset = null;
    this.generation = -1;
  }

  /** A status document's `serverTime` arrived at monotonic time `mono` on connection `generation`. */
  note(serverTime, mono, generation) {
    const at = parseTime(serverTime);
    if (at === null) return;
    const candidate = at - mono;
    if (this.generation !== generation || this.offset === null || candidate > this.offset) {
      this.offset = candidate;
      this.generation = generation;
    }
  }

  /** The server's epoch ms at monotonic time `mono`, or null before any reading. */
  now(mono) {
    return this.offset === null ? null : mono + this.offset;
  }
}

/** Milliseconds until the next automatic run of `doc` (received at `arrival`), by the server's clock at
 * monotonic time `mono`; null if the document cannot tell. */
export function remainingMs(doc, arrival, clock, mono) {
  const now = clock.now(mono);
  let due = parseTime(doc.nextRunAt);
  if (due === null) {
    const at = parseTime(doc.serverTime);
    const secs = toNumber(doc.secondsUntilNextRun);
    if (at !== null && secs !== null) due = at + secs * 1000;
  }
  if (due !== null && now !== null) return due - now;
  const seconds = toNumber(doc.secondsUntilNextRun);
  if (seconds !== null) return seconds * 1000 - (mono - arrival);
  return null;
}

/** Seconds left for the running run by the document's `eta`, moved on locally since it arrived; null when
 * the document has no estimate. */
export function etaSeconds(doc, arrival, clock, mono) {
  const eta = isObject(doc.eta) ? doc.eta : null;
  if (eta === null) return null;
  const finish = parseTime(eta.finishAt);
  const now = clock.now(mono);
  if (finish !== null && now !== null) return (finish - now) / 1000;
  const left = toNumber(eta.secondsLeft);
  return left === null ? null : left - (mono - arrival) / 1000;
}
