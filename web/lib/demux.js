/* Which element gets which status document, when one event stream carries every job of a service
 * (GET /api/events: a `status` event per job at connect, then one per change of any job, each document naming
 * its `job`). Pure: no DOM, no network, so node tests drive it as tables (tests/web/js/demux.test.mjs).
 *
 * The elements of a page follow feeds, each named by a key:
 * - DEFAULT_KEY (""): the service's default job (an element with no `job` attribute);
 * - a job's name: that job (an element with `job="NAME"`);
 * - ALL_JOBS ("*"): every job (the page's list of jobs, a history of all jobs).
 * The service says which job is its default in GET /api/jobs ({"jobs": [...], "defaultJob": "snapshot"}),
 * which the stream asks before it opens: JobDirectory keeps that answer and the jobs seen since. */

export const DEFAULT_KEY = "";
export const ALL_JOBS = "*";

/** The feed key of an element's `job` attribute (null, "" or missing: the default job). */
export function feedKey(job) {
  return typeof job === "string" && job !== "" ? job : DEFAULT_KEY;
}

/** A job's name as the service may send it: a non-empty string of at most 63 characters. */
export function isJobName(value) {
  return typeof value === "string" && value.length > 0 && value.length <= 63 && value !== ALL_JOBS;
}

/** What an answer to GET /api/jobs says about the service:
 * - {kind: "jobs", defaultJob, jobs: [names]}: it has the endpoints of several jobs (and /api/events);
 * - {kind: "legacy"}: it does not (404, or an answer that is no list of jobs: a proxy's page, say): the
 *   elements use each job's own stream, as services before several jobs need;
 * - {kind: "unauthorized"}: it wants a token for reads;
 * - {kind: "offline"}: it cannot tell now (a 5xx): try again later.
 * `status` is the HTTP status; `body` the parsed JSON (undefined when it was none). */
export function discoveryOutcome(status, body) {
  if (status === 401) return { kind: "unauthorized" };
  if (status === 404) return { kind: "legacy" };
  if (status < 200 || status > 299) return { kind: "offline" };
  if (body === null || typeof body !== "object" || !Array.isArray(body.jobs) || !isJobName(body.defaultJob)) {
    return { kind: "legacy" };
  }
  const jobs = [];
  for (const doc of body.jobs) {
    const name = doc !== null && typeof doc === "object" ? doc.job : undefined;
    if (isJobName(name) && !jobs.includes(name)) jobs.push(name);
  }
  if (!jobs.includes(body.defaultJob)) jobs.unshift(body.defaultJob);
  return { kind: "jobs", defaultJob: body.defaultJob, jobs };
}

/** The jobs of one service as this page knows them: from GET /api/jobs, and every job seen on the stream
 * since (a job added by a reload shows up there first). */
export class JobDirectory {
  constructor() {
    this.known = false; // a list of jobs was read
    this.defaultJob = null;
    this.names = []; // in the service's order, then in the order seen
  }

  /** Take a discovery outcome of kind "jobs" (the whole list: jobs gone since are dropped). Returns whether
   * what the page shows of the list changed. */
  learn(outcome) {
    const before = this.key();
    this.known = true;
    this.defaultJob = outcome.defaultJob;
    this.names = [...outcome.jobs];
    return this.key() !== before;
  }

  /** The service has no list of jobs (an older one): forget any list. Returns whether that changed anything. */
  forget() {
    const before = this.key();
    this.known = false;
    this.defaultJob = null;
    this.names = [];
    return this.key() !== before;
  }

  /** A document of `job` arrived: returns true when the job is new to the list. */
  note(job) {
    if (!this.known || !isJobName(job) || this.names.includes(job)) return false;
    this.names.push(job);
    return true;
  }

  has(job) {
    return this.names.includes(job);
  }

  /** Whether the feed `key` names a job the service does not have (once the list is known). */
  missing(key) {
    return this.known && key !== DEFAULT_KEY && key !== ALL_JOBS && !this.has(key);
  }

  /** The feed keys that a document from the all-jobs stream goes to: every job's (ALL_JOBS), its own job's,
   * and the default job's when it is that one. A document without a job is the default job's (a service's
   * only job). */
  route(doc) {
    const job = doc !== null && typeof doc === "object" && isJobName(doc.job) ? doc.job : null;
    if (job === null) return [ALL_JOBS, DEFAULT_KEY];
    return job === this.defaultJob ? [ALL_JOBS, job, DEFAULT_KEY] : [ALL_JOBS, job];
  }

  /** What the page's list of jobs and a history of every job read: {defaultJob, jobs, several}. */
  view() {
    return { defaultJob: this.defaultJob, jobs: [...this.names], several: this.known && this.names.length > 1 };
  }

  key() {
    return this.known + " " + this.defaultJob + " " + this.names.join(" ");
  }
}

/** The jobs the page lists under the default job's bar: every job but the default one, in the service's
 * order. */
export function otherJobs(view) {
  return view.jobs.filter((name) => name !== view.defaultJob);
}

/** What a list of entries keyed by job name must do to show `wanted` (names, in order): the names to add and
 * to remove. */
export function listChanges(shown, wanted) {
  return {
    add: wanted.filter((name) => !shown.includes(name)),
    remove: shown.filter((name) => !wanted.includes(name)),
  };
}
