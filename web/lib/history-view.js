/* What <snapshot-history> shows, as pure functions of the runs it read and the status documents the stream
 * brought (one job's, or every job's on a service with several): which rows, in which order, when to read the
 * runs again and from where. No DOM, no network: node tests drive them (tests/web/js/history-view.test.mjs). */

import { isObject } from "./format.js";

export const HISTORY_PAGE = 20;
export const HISTORY_MAX = 500; // the API's largest page

/** The runs of a page that can be shown: records with a runId. */
export function validRuns(list) {
  return Array.isArray(list) ? list.filter((run) => isObject(run) && typeof run.runId === "string") : [];
}

/** The status documents the history reflects. `feed` is the stream's feed (stream.js): one job's (`named`),
 * else every job's, of which, on a service with several jobs, those of the job chosen (`filter`, "" for all). */
export function docsOf(feed, { named, several, filter }) {
  if (!feed) return [];
  if (named) return isObject(feed.doc) ? [feed.doc] : [];
  const docs = [...feed.docs.values()].filter(isObject);
  return several && filter ? docs.filter((doc) => doc.job === filter) : docs;
}

/** What the shown rows reflect: the connection and the runs the documents name. When it changes, read again. */
export function historyKey(generation, docs) {
  const parts = docs.map((doc) => {
    const last = isObject(doc.lastRun) ? doc.lastRun : {};
    const current = isObject(doc.currentRun) ? doc.currentRun : {};
    return [doc.job, last.runId, last.status, last.finishedAt, current.runId].join("|");
  });
  return [generation, ...parts.sort()].join(" ");
}

/** `run` with its job named: a status document's records may leave it out, the document says it. */
export function withJob(run, doc) {
  return typeof run.job === "string" || typeof doc.job !== "string" ? run : { ...run, job: doc.job };
}

/** The runs running now, by the documents (`live`: the stream is open), newest first. */
export function runningRuns(docs) {
  const runs = docs
    .filter((doc) => isObject(doc.currentRun) && typeof doc.currentRun.runId === "string")
    .map((doc) => withJob(doc.currentRun, doc));
  return runs.sort((a, b) => String(b.startedAt ?? "").localeCompare(String(a.startedAt ?? "")));
}

/** The rows to show: the runs read, each one the documents also carry replaced by their (fresher) record, with
 * the running runs on top while the stream is live (a status event that says a run started can come before
 * the history has it). A service that keeps no history (`available` false) shows none of them. */
export function shownRuns(rows, docs, { live, available }) {
  const lasts = new Map();
  for (const doc of docs) {
    if (isObject(doc.lastRun) && typeof doc.lastRun.runId === "string") {
      lasts.set(doc.lastRun.runId, withJob(doc.lastRun, doc));
    }
  }
  const shown = rows.map((run) => lasts.get(run.runId) ?? run);
  const current = live && available ? runningRuns(docs) : [];
  if (current.length === 0) return shown;
  const ids = new Set(current.map((run) => run.runId));
  return [...current, ...shown.filter((run) => !ids.has(run.runId))];
}

/** Whether `run` (status "running") is running now, or was cut off (the service stopped during it). */
export function isRunningNow(run, docs) {
  return docs.some((doc) => isObject(doc.currentRun) && doc.currentRun.runId === run.runId);
}

/** Where a page of runs is read: the job's own runs (under its API), or, on a service with several jobs, the
 * service's runs of every job (/api/runs), or of the job chosen. `query` starts with "?limit=". */
export function runsPath(several, filter, query) {
  if (!several) return "runs" + query;
  return "/api/runs" + query + (filter ? "&job=" + encodeURIComponent(filter) : "");
}

/** The choices of the job filter: every job, then each one by name. */
export function filterChoices(jobs) {
  return [{ value: "", label: "All jobs" }, ...jobs.map((name) => ({ value: name, label: name }))];
}

/** The filter kept when the list of jobs changes: the job chosen if it is still there, else every job. */
export function keptFilter(filter, jobs) {
  return filter && jobs.includes(filter) ? filter : "";
}
