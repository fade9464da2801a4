/* One document of the API kept as fresh as what it reflects: an element says what it wants with a key
 * (`want(key, arg)`: the run shown and the step it is at, say) whenever the status stream says something,
 * and the document is fetched again only when the key changed. At most one request is in flight: a change
 * during one is fetched once after it, so a key that changes faster than the service answers (a job racing
 * through its steps) still lands an answer after each request rather than none at all.
 *
 * No DOM, no network of its own: `fetch(arg)` is the element's (lib/api.js), so node tests drive it. */

export class Refetch {
  /** `fetch(arg)` resolves to an answer (its failures too); `deliver(answer, key, arg)` is given each one, in order. */
  constructor(fetch, deliver) {
    this.fetch = fetch;
    this.deliver = deliver;
    this.key = null; // the key last asked for
    this.arg = null;
    this.busy = false;
    this.again = false; // the key changed while a request was out
    this.closed = false;
  }

  /** Fetch for `key` unless that is what was last asked for. Returns whether a fetch was asked. */
  want(key, arg = key) {
    if (this.closed || key === this.key) return false;
    this.key = key;
    this.arg = arg;
    this.run();
    return true;
  }

  /** Forget the key: the next `want` fetches whatever it names (a token was given, say). */
  reset() {
    this.key = null;
  }

  async run() {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    this.again = false;
    const { key, arg } = this;
    let answer;
    let failed = false;
    try {
      answer = await this.fetch(arg);
    } catch (e) {
      failed = true; // a fetch that throws (it should answer its failures) delivers nothing, and blocks nothing
      console.error(e);
    }
    this.busy = false;
    if (this.closed) return;
    if (!failed) this.deliver(answer, key, arg);
    if (this.again) this.run();
  }

  /** No answer is delivered from now on (the element left the page). */
  close() {
    this.closed = true;
  }
}
