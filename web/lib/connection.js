/* One event stream of a service, kept open: opened, reconnected with backoff, and told why it is not open.
 * stream.js shares one per service between every element of the page (and falls back to one per job for a
 * service that has no stream of every job).
 *
 * Its state, for the elements to show:
 * - "connecting": before the first answer;
 * - "open": status documents arrive;
 * - "offline": the service cannot be reached; retried with backoff (backoff.js);
 * - "unauthorized": the service wants a token for reads (none, or a wrong one): retried when one is given;
 * - "refused": the service answers, but not to this page's origin (not in its --allow-origin);
 * - "missing": the service has no such job (a job's own stream).
 *
 * EventSource does not say why it failed, so on any error the stream is closed (it is never left to retry
 * by itself: its URL may hold a ticket that is single-use) and one request is made with fetch (`probe`), whose
 * answer tells which of the states above applies. A connection whose `checkFirst` is set makes that request
 * before it opens the stream too: the stream of every job asks GET /api/jobs first, to learn which job is the
 * default and whether the service has that stream at all. */

import { Backoff } from "./backoff.js";
import { ServerClock } from "./clock.js";
import { isObject } from "./format.js";
import { tokens } from "./token.js";

export class Connection {
  /**
   * @param api an Api (lib/api.js) of the service
   * @param options {path: the stream's path for api.streamUrl, probe: the path read to learn why,
   *   judge(response) -> Promise of "ok" | "missing" | "legacy" | "offline" (a 401 is judged here),
   *   unread() -> Promise of such a state, or null: when reading the probe failed (null: find out whether the
   *   service is reachable), checkFirst: probe before opening, onStatus(doc, arrival), onState(), onLegacy()}
   */
  constructor(api, options) {
    this.api = api;
    this.options = options;
    this.clock = new ServerClock();
    this.backoff = new Backoff();
    this.generation = 0; // bumped on every (re)connect
    this.state = "connecting";
    this.everFailed = false;
    this.tokenRefused = false; // the last 401 was to a token (it was wrong), not to its absence
    this.checked = false; // a probe just said the service is up: the next connect need not ask again
    this.source = null;
    this.timer = null;
    this.closed = false;
    this.stopTokens = tokens.subscribe(api.server, () => this.onToken());
  }

  setState(state) {
    if (state !== "open" && state !== "connecting") this.everFailed = true;
    if (state === this.state) return;
    this.state = state;
    this.options.onState();
  }

  async connect() {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.dropSource();
    const generation = ++this.generation;
    if (this.options.checkFirst && !this.checked) {
      this.probe(generation, true);
      return;
    }
    this.checked = false;
    let url;
    try {
      url = await this.api.streamUrl(this.options.path);
    } catch (e) {
      if (generation === this.generation) this.probe(generation, false);
      return;
    }
    if (generation !== this.generation || this.closed) return;
    if (url === null) {
      this.tokenRefused = true;
      this.setState("unauthorized");
      return;
    }
    const es = new EventSource(url);
    this.source = es;
    es.addEventListener("open", () => {
      if (this.source !== es) return;
      this.backoff.reset();
      this.setState("open");
    });
    es.addEventListener("status", (event) => {
      if (this.source === es) this.onStatus(event.data, generation);
    });
    es.addEventListener("error", () => {
      if (this.source !== es) return;
      this.dropSource();
      this.probe(generation, false);
    });
  }

  onStatus(data, generation) {
    let parsed;
    try {
      parsed = JSON.parse(data);
    } catch (e) {
      return; // a garbled event changes nothing
    }
    if (!isObject(parsed)) return;
    const arrival = performance.now();
    this.clock.note(parsed.serverTime, arrival, generation);
    this.setState("open");
    this.options.onStatus(parsed, arrival);
  }

  /** Ask the service why the stream failed (or, `first`, whether to open it): then show that and open the
   * stream, or retry as the answer calls for. */
  async probe(generation, first) {
    let state = "offline";
    try {
      const sent = this.api.token();
      const response = await this.api.read(this.options.probe);
      if (generation !== this.generation || this.closed) return;
      this.tokenRefused = response.status === 401 && sent !== null;
      state = response.status === 401 ? "unauthorized" : await this.options.judge(response);
    } catch (e) {
      state = (await this.options.unread?.()) ?? ((await this.reachable()) ? "refused" : "offline");
    }
    if (generation !== this.generation || this.closed) return;
    if (state === "legacy") {
      this.options.onLegacy(); // the service has no such stream: the caller closes this one
      return;
    }
    if (state === "ok") {
      this.checked = true;
      if (first) {
        this.connect(); // the service is there: open the stream now
        return;
      }
      state = "offline"; // up, but the stream broke (a restart): reconnect soon
    }
    if (state === this.state) this.options.onState(); // the same state, but maybe another token refused
    this.setState(state);
    if (state !== "unauthorized") this.retryLater();
  }

  /** Whether the server answers at all, CORS aside: a no-cors request resolves (opaquely) when it does. */
  async reachable() {
    if (this.api.server === globalThis.location?.origin) return false;
    try {
      await fetch(this.api.server + "/health", { mode: "no-cors", cache: "no-store" });
      return true;
    } catch (e) {
      return false;
    }
  }

  retryLater() {
    if (this.timer !== null || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, this.backoff.next());
  }

  /** A token was given (or forgotten): a stream that waited for one, or could use one, starts again. */
  onToken() {
    if (this.closed || this.state === "open") return;
    if (this.state === "unauthorized" && !this.api.token()) return;
    this.backoff.reset();
    this.connect();
  }

  dropSource() {
    if (this.source !== null) {
      this.source.close();
      this.source = null;
    }
  }

  close() {
    this.closed = true;
    this.generation += 1;
    clearTimeout(this.timer);
    this.timer = null;
    this.dropSource();
    this.stopTokens();
  }
}
