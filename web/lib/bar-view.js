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
  laterText,
  listText,
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

/** What a bar calls its job's runs: the default job's bar speaks of snapshots, as it always has; the bar of a
 * job named in its `job` attribute (its name beside the words) of runs. */
export function barWords(named) {
  return named
    ? { noun: "run", nouns: "runs", running: "Running...", none: "No run yet" }
    : { noun: "snapshot", nouns: "snapshots", running: "Snapshot: Running...", none: "No snapshot has run yet" };
}

/** The jobs whose completed runs also start this one, when the document says them (`after`). */
export function afterOf(doc) {
  const after = Array.isArray(doc.after) ? doc.after : isObject(doc.schedule) ? doc.schedule.after : null;
  return Array.isArray(after) ? after.filter((name) => typeof name === "string" && name) : [];
}

/** How the document says the job is scheduled: "interval", "cron", "manual", or "" (a service from before
 * several jobs does not say: an interval). */
export function scheduleKind(doc) {
  const kind = isObject(doc.schedule) ? doc.schedule.kind : null;
  return kind === "interval" || kind === "cron" || kind === "manual" ? kind : "";
}

/**
 * @param doc the latest status document, or null
 * @param ctx {state, everFailed, job (the name an unknown job is called by), named (the bar names its job:
 *   barWords), now (server epoch ms or null), remaining (ms or null), etaLeft (s or null)}
 */
export function barModel(doc, ctx) {
  const connected = ctx.state === "open" && doc !== null;
  const mode = !connected ? "offline" : doc.running === true ? "running" : "idle";
  const words = barWords(ctx.named === true);
  // A job whose run waits for a free slot (max-parallel) has its triggers pending: no follow-up is queued.
  const waiting = mode === "idle" && doc.waiting === true;
  const model = {
    mode,
    connected,
    status: "",
    statusTitle: null,
    progress: null,
    eta: null,
    queued: connected && doc.queued === true && !waiting,
    waiting,
    paused: connected && isObject(doc.paused),
    pauseKnown: connected && "paused" in doc,
    pausedChip: "automatic " + words.nouns + " paused",
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
    const paused = pausedTexts(doc.paused, words.nouns);
    model.pausedChipTitle = paused.title;
    if (mode === "idle" && !waiting) {
      model.status = paused.line;
      model.statusTitle = paused.title;
      return model;
    }
  }
  if (waiting) {
    model.status = "Waiting for a slot";
    model.statusTitle = "A " + words.noun + " is due: it starts when a run of another job ends (the service "
      + "runs at most max-parallel jobs at once)";
    return model;
  }
  if (mode === "running") {
    model.stopping = typeof doc.stopping === "string" ? doc.stopping : null;
    model.status = model.stopping === null ? words.running
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
  const kind = scheduleKind(doc);
  if (kind === "manual") {
    const after = afterOf(doc);
    model.status = after.length ? "Runs after " + listText(after) : "Runs on triggers";
    model.statusTitle = "No schedule of its own: runs on Run Now and trigger files"
      + (after.length ? ", and after each completed run of " + listText(after) : "");
    return model;
  }
  model.status = idleText(doc, kind, words.noun, ctx);
  model.statusTitle = scheduleTitle(doc, kind, words.noun, ctx.now);
  return model;
}

/** The idle bar's line: the countdown; for a calendar schedule an hour or more away, the time it comes at
 * ("Next run at 07:30", "Next run on Mon at 07:30"): a calendar's runs are at a time of day, not at a distance. */
export function idleText(doc, kind, noun, ctx) {
  const due = parseTime(doc.nextRunAt);
  if (kind === "cron" && due !== null && ctx.now !== null && ctx.remaining !== null && ctx.remaining >= 3600000) {
    const when = laterText(due, ctx.now);
    if (when) return "Next " + noun + " " + when;
  }
  return countdownText(ctx.remaining, noun);
}

/** The idle bar's title: when the next automatic run is due, and the schedule ("every 30 minutes", "cron
 * '30 7 * * 1-5' in Europe/Berlin"); null when the document says neither. */
export function scheduleTitle(doc, kind, noun, now) {
  const due = parseTime(doc.nextRunAt);
  // A time more than a day away (a weekly calendar, say) needs its date too.
  const at = due === null ? "" : now !== null && Math.abs(due - now) >= 86400000 ? localDateTime(due) : localClock(due);
  let title = due === null ? "" : "Next automatic " + noun + " at " + at;
  const schedule = isObject(doc.schedule) ? doc.schedule : {};
  const every = toNumber(doc.intervalMinutes);
  let how = every !== null ? "every " + plural(every, "minute") : "";
  if (kind === "cron" && text(schedule.expression)) {
    how = "cron '" + schedule.expression + "'" + (text(schedule.timezone) ? " in " + schedule.timezone : "");
  }
  if (how) title += (title ? " " : "") + "(" + how + ")";
  return title || null;
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
