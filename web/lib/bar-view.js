/* What the bar shows, as a pure function of the status document and the stream's state: every text, title
 * and flag the element then writes into its shadow DOM (snapshot-bar.js). No DOM, no clock: the server's
 * "now", the countdown and the ETA are passed in, so node tests drive every state as a table. */

import {
  agoText,
  checksText,
  countdownText,
  detailLine,
  etaText,
  firstLine,
  isObject,
  localClock,
  localDateTime,
  outcomeLabel,
  parseTime,
  pausedTexts,
  percentOf,
  plural,
  progressValueText,
  text,
  toNumber,
  triggerLabel,
} from "./format.js";

/** The line shown while the stream is not open. */
export function offlineText(state, everFailed, job) {
  switch (state) {
    case "unauthorized":
      return "Enter the service's token to see snapshots";
    case "refused":
      return "This page's origin may not read the snapshot service (see --allow-origin)";
    case "missing":
      return "The snapshot service has no job named " + job;
    default:
      return everFailed ? "Snapshot service unreachable — reconnecting…" : "Connecting to the snapshot service…";
  }
}

/**
 * @param doc the latest status document, or null
 * @param ctx {state, everFailed, job, now (server epoch ms or null), remaining (ms or null), etaLeft (s or null)}
 */
export function barModel(doc, ctx) {
  const connected = ctx.state === "open" && doc !== null;
  const mode = !connected ? "offline" : doc.running === true ? "running" : "idle";
  const model = {
    mode,
    connected,
    status: "",
    statusTitle: null,
    progress: null,
    eta: null,
    queued: connected && doc.queued === true,
    paused: connected && isObject(doc.paused),
    pauseKnown: connected && "paused" in doc,
    pausedChipTitle: null,
    stopping: null,
    checks: connected ? checksText(doc.checks) : { line: "", title: "" },
    last: lastModel(doc, ctx.now),
  };
  if (mode === "offline") {
    model.status = offlineText(ctx.state, ctx.everFailed, ctx.job);
    return model;
  }
  if (model.paused) {
    const paused = pausedTexts(doc.paused);
    model.pausedChipTitle = paused.title;
    if (mode === "idle") {
      model.status = paused.line;
      model.statusTitle = paused.title;
      return model;
    }
  }
  if (mode === "running") {
    model.stopping = typeof doc.stopping === "string" ? doc.stopping : null;
    model.status = model.stopping === null ? "Snapshot: Running..."
      : "Stopping…" + (model.stopping ? " (" + model.stopping + ")" : "");
    const progress = isObject(doc.progress) ? doc.progress : {};
    const percent = percentOf(progress);
    const step = text(progress.step);
    model.progress = {
      percent,
      valueNow: String(Math.round(percent * 10) / 10),
      valueText: progressValueText(percent, step),
      percentText: Math.round(percent) + "%",
      step,
    };
    if (model.stopping === null && ctx.etaLeft !== null) {
      // etaLeft comes from the context, not from this document: the document's eta may be missing or no object.
      const eta = isObject(doc.eta) ? doc.eta : {};
      const finish = parseTime(eta.finishAt);
      model.eta = {
        text: etaText(ctx.etaLeft),
        title: etaBasisText(eta.basis)
          + (finish !== null ? "; done about " + localClock(finish) : ""),
      };
    }
    return model;
  }
  model.status = countdownText(ctx.remaining);
  const due = parseTime(doc.nextRunAt);
  const every = toNumber(doc.intervalMinutes);
  let title = due === null ? "" : "Next automatic snapshot at " + localClock(due);
  if (every !== null) title += (title ? " " : "") + "(every " + plural(every, "minute") + ")";
  model.statusTitle = title || null;
  return model;
}

/** What the ETA's title says it comes from (the server's `eta.basis`). */
export function etaBasisText(basis) {
  if (basis === "progress") return "Estimated from the progress so far";
  if (basis === "steps") return "Estimated from the usual durations of the steps left";
  return "Estimated from recent runs";
}

/** The running step's detail line under the step (its counts too: "repo 5/15: octo/api"), and the progress
 * bar's value text with it; null when the document has none, or no run is going on. Apart from barModel: a
 * line that changes with every report, not a state of the bar. */
export function detailModel(doc) {
  if (!isObject(doc) || doc.running !== true || !isObject(doc.progress)) return null;
  const progress = doc.progress;
  const line = detailLine(progress.detail, progress.done, progress.total);
  if (!line) return null;
  return { text: line, valueText: progressValueText(percentOf(progress), text(progress.step), line) };
}

/** The last run's line: its outcome, when it finished (and how long ago), its trigger; its error apart. */
export function lastModel(doc, now) {
  const last = doc && isObject(doc.lastRun) ? doc.lastRun : null;
  if (last === null) return { outcome: "none", label: null, parts: [], error: null, title: null, empty: doc !== null };
  const status = typeof last.status === "string" ? last.status : "unknown";
  const parts = [];
  const finished = parseTime(last.finishedAt);
  if (finished !== null) {
    const ago = agoText(finished, now);
    parts.push(localClock(finished) + (ago ? " (" + ago + ")" : ""));
  }
  if (typeof last.trigger === "string") parts.push(triggerLabel(last.trigger));
  const title = [];
  if (finished !== null) title.push("Finished " + localDateTime(finished));
  if (text(last.reason)) title.push("Reason: " + last.reason);
  if (toNumber(last.durationSeconds) !== null) title.push("Took " + last.durationSeconds + " s");
  const error = last.error ? firstLine(last.error) : null;
  if (last.error) title.push(String(last.error));
  return { outcome: status, label: outcomeLabel(status), parts, error, title: title.length ? title.join("\n") : null };
}

/** What changed between two status documents that the host page is told of: a run that started (its
 * record), and a run that finished (its record). The first document of a page is a baseline: the run it
 * names started or ended before the page looked. */
export function runChanges(before, after) {
  const changes = { started: null, finished: null };
  if (before === null || !isObject(after)) return changes;
  const was = isObject(before.currentRun) ? before.currentRun.runId : null;
  const is = isObject(after.currentRun) ? after.currentRun.runId : null;
  if (is !== null && is !== was) changes.started = after.currentRun;
  const lastBefore = isObject(before.lastRun) ? before.lastRun.runId : null;
  const lastAfter = isObject(after.lastRun) ? after.lastRun : null;
  if (lastAfter !== null && lastAfter.runId !== lastBefore) changes.finished = lastAfter;
  return changes;
}
