/* One event stream per service per page, shared by every element of any job of that service (bars,
 * histories, steps, charts): GET /api/events carries a status document for every job, each naming its `job`,
 * and the page hands each one to the elements of that job (demux.js). Opened with the first element and
 * closed with the last; reconnected with backoff, told why it is down (connection.js).
 *
 * A service from before several jobs has no /api/events: GET /api/jobs, asked first, answers 404, and each job
 * shown then gets its own stream (/api/snapshot/events for the default job), as such a service expects.
 *
 * What an element follows is a feed: the documents of one job (or of every job, ALL_JOBS), with the state of
 * the connection that brings them. A feed has `doc` (the latest document), `arrival` (performance.now() when
 * it came), `state` (connection.js's states; "missing" for a job the service does not have), `clock` (the
 * server's, clock.js), `generation` (bumped on each reconnect), `everFailed`, `tokenRefused`, `jobs` (the
 * service's jobs, demux.js's view()) and, for ALL_JOBS, `docs` (the latest document of each job, by name). */

import { Api } from "./api.js";
import { Connection } from "./connection.js";
import { ALL_JOBS, DEFAULT_KEY, JobDirectory, discoveryOutcome, feedKey } from "./demux.js";

export { ALL_JOBS } from "./demux.js";

const REGISTRY = Symbol.for("snapshot-orchestrator/services");
const services = globalThis[REGISTRY] || (globalThis[REGISTRY] = new Map());

class Feed {
  constructor(service, key) {
    this.service = service;
    this.key = key;
    this.listeners = new Set();
    this.doc = null; // the latest status document
    this.arrival = 0;
    this.docs = new Map(); // ALL_JOBS: each job's latest document, by its name ("" for a document without one)
    this.conn = null; // the connection that brings its documents
  }

  get state() {
    const state = this.conn.state;
    return state === "open" && this.service.directory.missing(this.key) ? "missing" : state;
  }

  get clock() { return this.conn.clock; }
  get generation() { return this.conn.generation; }
  get everFailed() { return this.conn.everFailed; }
  get tokenRefused() { return this.conn.tokenRefused; }
  get jobs() { return this.service.directory.view(); }

  take(doc, arrival) {
    this.doc = doc;
    this.arrival = arrival;
    if (this.key === ALL_JOBS) this.docs.set(typeof doc.job === "string" ? doc.job : "", doc);
    this.emit("status");
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
}

/** The feeds of one service, and the connection(s) that bring their documents: one for every job, or, for
 * a service without it ("legacy"), one per job followed. */
class Service {
  constructor(server) {
    this.server = server;
    this.feeds = new Map(); // key -> Feed
    this.directory = new JobDirectory();
    this.legacy = false;
    this.shared = null; // the connection of every job
    this.own = new Map(); // legacy: feed key (never ALL_JOBS) -> its job's connection
    // The latest document of each job, by its name ("" for none; legacy: by feed key), with its arrival: an
    // element that comes after the stream opened starts from it (the stream says a job's state only when it
    // changes).
    this.latest = new Map();
  }

  feed(key) {
    let feed = this.feeds.get(key);
    if (!feed) {
      feed = new Feed(this, key);
      this.feeds.set(key, feed);
      this.attach(feed);
      this.seed(feed);
    }
    return feed;
  }

  /** Give a new feed what the stream already said of its job(s). */
  seed(feed) {
    const from = (name) => this.latest.get(name) ?? null;
    let entries;
    if (feed.key === ALL_JOBS) {
      entries = this.legacy ? [from(DEFAULT_KEY)] : [...this.latest.values()].sort((a, b) => a.arrival - b.arrival);
    } else if (feed.key === DEFAULT_KEY) {
      entries = [this.legacy ? from(DEFAULT_KEY) : (from(this.directory.defaultJob) ?? from(""))];
    } else {
      entries = [from(feed.key)];
    }
    for (const entry of entries) if (entry !== null) feed.take(entry.doc, entry.arrival);
  }

  attach(feed) {
    feed.conn = this.legacy ? this.ownConnection(feed.key === ALL_JOBS ? DEFAULT_KEY : feed.key) : this.sharedConnection();
  }

  sharedConnection() {
    if (this.shared === null) {
      const conn = new Connection(new Api(this.server), {
        path: "/api/events",
        probe: "/api/jobs",
        checkFirst: true,
        judge: (response) => this.judgeJobs(response),
        unread: () => this.unreadJobs(conn.api),
        onStatus: (doc, arrival) => this.route(doc, arrival),
        onState: () => this.tell(null, "state"),
        onLegacy: () => this.becomeLegacy(),
      });
      this.shared = conn;
      // From the next task: the host page may still be handing its elements a token (`bar.token = ...` right
      // after they were defined), which the first request should carry rather than be refused without.
      setTimeout(() => conn.connect(), 0);
    }
    return this.shared;
  }

  /** What GET /api/jobs says; the list of jobs is kept (and told to the feeds when it changed). */
  async judgeJobs(response) {
    let body;
    try {
      body = response.ok ? await response.json() : undefined;
    } catch (e) {
      body = undefined;
    }
    const outcome = discoveryOutcome(response.status, body);
    if (outcome.kind !== "jobs") return outcome.kind;
    if (this.directory.learn(outcome)) {
      // Jobs removed by a reload: their last documents are no longer news of the service's jobs.
      for (const kept of [this.latest, this.feeds.get(ALL_JOBS)?.docs]) {
        for (const name of kept ? [...kept.keys()] : []) {
          if (name !== "" && !this.directory.has(name)) kept.delete(name);
        }
      }
      this.tell(null, "jobs");
    }
    return "ok";
  }

  /** GET /api/jobs failed without an answer. From another origin that is also how a service from before
   * several jobs refuses it when the request carries a token (it answers no preflight for a path it does not
   * have): if the default job's status can be read, and the jobs still cannot, the service has no such list.
   * null: the service cannot be read at all (the connection finds out why). */
  async unreadJobs(api) {
    try {
      await api.read("status");
    } catch (e) {
      return null;
    }
    try {
      const response = await api.read("/api/jobs");
      return response.status === 401 ? "unauthorized" : await this.judgeJobs(response);
    } catch (e) {
      return "legacy";
    }
  }

  route(doc, arrival) {
    this.latest.set(typeof doc.job === "string" ? doc.job : "", { doc, arrival });
    if (this.directory.note(doc.job)) this.tell(null, "jobs");
    for (const key of this.directory.route(doc)) this.feeds.get(key)?.take(doc, arrival);
  }

  /** The service has no stream of every job: follow each job on its own stream from now on. */
  becomeLegacy() {
    this.legacy = true;
    if (this.shared !== null) this.shared.close();
    this.shared = null;
    const changed = this.directory.forget();
    this.latest.clear();
    for (const feed of this.feeds.values()) this.attach(feed);
    this.tell(null, "state");
    if (changed) this.tell(null, "jobs");
  }

  ownConnection(key) {
    let conn = this.own.get(key);
    if (!conn) {
      const api = new Api(this.server, key === DEFAULT_KEY ? null : key);
      conn = new Connection(api, {
        path: "events",
        probe: "status",
        checkFirst: false,
        judge: async (response) => (response.status === 404 ? "missing" : response.ok ? "ok" : "offline"),
        onStatus: (doc, arrival) => {
          this.latest.set(key, { doc, arrival });
          this.feeds.get(key)?.take(doc, arrival);
          if (key === DEFAULT_KEY) this.feeds.get(ALL_JOBS)?.take(doc, arrival);
        },
        onState: () => this.tell(conn, "state"),
        onLegacy: () => {},
      });
      this.own.set(key, conn);
      conn.connect();
    }
    return conn;
  }

  /** Tell the feeds of `conn` (null: every feed) of `kind`. "jobs" is "state" to the feed of one job: a named
   * job may have come or gone, and every feed says the list of jobs (`jobs`). */
  tell(conn, kind) {
    for (const feed of [...this.feeds.values()]) {
      if (conn !== null && feed.conn !== conn) continue;
      feed.emit(kind === "jobs" && feed.key !== ALL_JOBS ? "state" : kind);
    }
  }

  remove(feed, listener) {
    feed.listeners.delete(listener);
    if (feed.listeners.size > 0) return;
    this.feeds.delete(feed.key);
    if (this.legacy) {
      const key = feed.key === ALL_JOBS ? DEFAULT_KEY : feed.key;
      const used = [...this.feeds.values()].some((other) => other.conn === feed.conn);
      if (!used) {
        feed.conn.close();
        this.own.delete(key);
        this.latest.delete(key);
      }
    }
    if (this.feeds.size === 0) this.close();
  }

  close() {
    if (this.shared !== null) this.shared.close();
    for (const conn of this.own.values()) conn.close();
    this.shared = null;
    this.own.clear();
    services.delete(this.server);
  }
}

/** Follow the status of `job` on `server` (null or "": the service's default job; ALL_JOBS: every job):
 * `listener(kind, feed)` is called with kind "status" for every new document, "state" when the connection's
 * state changes and, for ALL_JOBS, "jobs" when the list of the service's jobs changed; and once at once if the
 * feed already has something to show. Returns the function that unsubscribes (the last one of the page closes
 * the stream). */
export function subscribe(server, job, listener) {
  let service = services.get(server);
  if (!service) {
    service = new Service(server);
    services.set(server, service);
  }
  const feed = service.feed(job === ALL_JOBS ? ALL_JOBS : feedKey(job));
  feed.listeners.add(listener);
  if (feed.doc !== null) listener("status", feed);
  else if (feed.state !== "connecting") listener("state", feed);
  else if (feed.key === ALL_JOBS && service.directory.known) listener("jobs", feed);
  return () => service.remove(feed, listener);
}
