/* One status stream per job of a server per page, shared by every element that shows it (several bars, a
 * history list), opened with the first subscriber and closed with the last.
 *
 * The stream's state, for the elements to show:
 * - "connecting": before the first answer;
 * - "open": status documents arrive;
 * - "offline": the service cannot be reached; retried with backoff (backoff.js);
 * - "unauthorized": the service wants a token for reads (none, or a wrong one): retried when one is given;
 * - "refused": the service answers, but not to this page's origin (not in its --allow-origin);
 * - "missing": the service has no such job.
 *
 * EventSource does not say why it failed, so on any error the stream is closed (it is never left to retry
 * by itself: its URL may hold a ticket that is single-use) and the status is asked for once with fetch,
 * whose answer tells which of the states above applies. */

import { Api } from "./api.js";
import { Backoff } from "./backoff.js";
import { ServerClock } from "./clock.js";
import { isObject } from "./format.js";
import { tokens } from "./token.js";

const REGISTRY = Symbol.for("snapshot-orchestrator/streams");
const streams = globalThis[REGISTRY] || (globalThis[REGISTRY] = new Map());

class SharedStream {
  constructor(server, job) {
    this.key = server + " " + job;
    this.api = new Api(server, job);
    this.clock = new ServerClock();
    this.backoff = new Backoff();
    this.listeners = new Set();
    this.doc = null; // the latest status document
    this.arrival = 0; // performance.now() when it arrived
    this.generation = 0; // bumped on every (re)connect
    this.state = "connecting";
    this.everFailed = false;
    this.tokenRefused = false; // the last 401 was to a token (it was wrong), not to its absence
    this.source = null;
    this.timer = null;
    this.closed = false;
    this.stopTokens = tokens.subscribe(server, () => this.onToken());
  }

  add(listener) {
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.connect();
  }

  remove(listener) {
    this.listeners.delete(listener);
    if (this.listeners.size === 0) this.close();
  }

  emit(kind) {
    for (const listener of [...this.listeners]) {
      try {
        listener(kind, this);
      } catch (e) {
        console.error(e); // one element's fault must not starve the others
      }
    }
  }

  setState(state) {
    if (state !== "open" && state !== "connecting") this.everFailed = true;
    if (state === this.state) return;
    this.state = state;
    this.emit("state");
  }

  async connect() {
    clearTimeout(this.timer);
    this.timer = null;
    this.dropSource();
    const generation = ++this.generation;
    let url;
    try {
      url = await this.api.streamUrl("events");
    } catch (e) {
      if (generation === this.generation) this.probe(generation);
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
      this.probe(generation);
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
    this.arrival = performance.now();
    this.doc = parsed;
    this.clock.note(parsed.serverTime, this.arrival, generation);
    this.setState("open");
    this.emit("status");
  }

  /** The stream failed: find out why, then show it and retry as that calls for. */
  async probe(generation) {
    let state = "offline";
    try {
      const sent = this.api.token();
      const response = await this.api.read("status");
      this.tokenRefused = response.status === 401 && sent !== null;
      if (response.status === 401) state = "unauthorized";
      else if (response.status === 404) state = "missing";
      else if (response.ok) state = "offline"; // up, but the stream broke (a restart): reconnect soon
    } catch (e) {
      state = (await this.reachable()) ? "refused" : "offline";
    }
    if (generation !== this.generation || this.closed) return;
    if (state === this.state) this.emit("state"); // the same state, but maybe another token refused
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
    streams.delete(this.key);
  }
}

/** Follow the status of `job` on `server`: `listener(kind, stream)` is called with kind "status" for every
 * new document and "state" when the connection's state changes, and once at once if the stream already has
 * something to show. Returns the function that unsubscribes (the last one closes the stream). */
export function subscribe(server, job, listener) {
  const key = server + " " + job;
  let stream = streams.get(key);
  if (!stream) {
    stream = new SharedStream(server, job);
    streams.set(key, stream);
  }
  stream.add(listener);
  if (stream.doc !== null) listener("status", stream);
  else if (stream.state !== "connecting") listener("state", stream);
  return () => stream.remove(listener);
}
