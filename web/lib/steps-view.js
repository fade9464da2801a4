/* What <snapshot-steps> shows: one run's timeline as rows, a pure function of
 * - the run's steps (GET /api/<job>/runs/<runId>/steps: {runId, status, steps: [...], truncated}),
 * - the step statistics of recent runs (GET /api/<job>/steps: the usual duration of each step name, in the
 *   order of the latest completed run), for the steps still to come and for what is usual,
 * - the live progress of the status document, when the run is the one running (its current step's detail and
 *   counts change far more often than the steps are fetched again),
 * - and the server's "now" (epoch ms, see clock.js), for the current step's elapsed time.
 * No DOM, no clock: node tests drive it as tables (tests/web/js/steps-view.test.mjs). */

import { countOf, detailLine, durationText, isObject, parseTime, text, toNumber } from "./format.js";

/** A step is "slower than usual" when it took more than SLOW_FACTOR times its median and at least
 * SLOW_MIN_SECONDS more, with a median from SLOW_MIN_RUNS runs or more: the service's own rule. */
export const SLOW_FACTOR = 1.5;
export const SLOW_MIN_SECONDS = 1;
export const SLOW_MIN_RUNS = 3;

/** The steps of a steps answer that can be shown (an object with a name), as they came. */
export function validSteps(body) {
  const list = isObject(body) && Array.isArray(body.steps) ? body.steps : [];
  return list.filter((step) => isObject(step) && typeof step.name === "string");
}

/** The usual durations by step name, from a statistics answer: Map name -> {median, p90, runs, order}. */
export function usualByName(stats) {
  const usual = new Map();
  validSteps(stats).forEach((step, order) => {
    const median = toNumber(step.medianSeconds);
    if (median === null || median < 0 || usual.has(step.name)) return;
    usual.set(step.name, { median, p90: toNumber(step.p90Seconds), runs: countOf(step.runs) ?? 0, order });
  });
  return usual;
}

/** The live part of a status document for run `runId`, if that is the run going on: {step, detail, done,
 * total, startedAt (epoch ms or null)}; else null. */
export function liveOf(doc, runId) {
  if (!isObject(doc) || doc.running !== true || !isObject(doc.currentRun) || !isObject(doc.progress)) return null;
  if (typeof runId !== "string" || doc.currentRun.runId !== runId) return null;
  const progress = doc.progress;
  return {
    step: text(progress.step),
    detail: text(progress.detail),
    done: countOf(progress.done),
    total: countOf(progress.total),
    startedAt: parseTime(progress.stepStartedAt),
  };
}

/** Whether `seconds` is slower than usual by the service's rule. */
export function isSlow(seconds, usual) {
  if (seconds === null || !usual || usual.runs < SLOW_MIN_RUNS) return false;
  return seconds > SLOW_FACTOR * usual.median && seconds - usual.median >= SLOW_MIN_SECONDS;
}

function secondsOf(step) {
  const given = toNumber(step.durationSeconds);
  if (given !== null && given >= 0) return given;
  const start = parseTime(step.startedAt);
  const end = parseTime(step.endedAt);
  return start !== null && end !== null && end >= start ? (end - start) / 1000 : null;
}

/** The run's steps with the live report folded in: the last step goes on with the live detail, or, when the
 * report names a step the fetched list does not have yet (it is being fetched again), that step is added
 * and the one before it ends where it begins. Returns {steps, current (the index of the current step or
 * -1)}; each step {name, startedAt, seconds, detail, done, total, open (no end recorded)}. */
export function mergeLive(fetched, running, live) {
  const steps = fetched.map((step) => ({
    name: step.name,
    startedAt: parseTime(step.startedAt),
    seconds: secondsOf(step),
    detail: text(step.detail),
    done: countOf(step.done),
    total: countOf(step.total),
    open: step.endedAt === null || step.endedAt === undefined,
  }));
  let last = steps.length ? steps[steps.length - 1] : null;
  if (live && live.step) {
    if (last && last.open && last.name === live.step) {
      Object.assign(last, { detail: live.detail, done: live.done, total: live.total });
      if (live.startedAt !== null) last.startedAt = live.startedAt;
    } else {
      if (last && last.open) {
        last.open = false;
        if (last.startedAt !== null && live.startedAt !== null && live.startedAt >= last.startedAt) {
          last.seconds = (live.startedAt - last.startedAt) / 1000;
        }
      }
      last = { name: live.step, startedAt: live.startedAt, seconds: null, detail: live.detail, done: live.done,
        total: live.total, open: true };
      steps.push(last);
    }
  }
  const current = (running || live) && last && last.open ? steps.length - 1 : -1;
  return { steps, current };
}

/** The steps still to come: those of the latest completed run (in its order) after the furthest of them this
 * run has reached, and not yet seen in this run. */
export function stepsToCome(seen, usual) {
  const names = new Set(seen);
  let furthest = -1;
  for (const name of names) if (usual.has(name)) furthest = Math.max(furthest, usual.get(name).order);
  return [...usual.entries()]
    .filter(([name, u]) => u.order > furthest && !names.has(name))
    .map(([name, u]) => ({ name, usual: u }));
}

const ENDINGS = { error: "failed during this step", cancelled: "cancelled during this step" };

/**
 * The timeline.
 * @param run the steps answer of the run shown, or null before it came
 * @param ctx {stats (the statistics answer or null), live (liveOf(...) or null), now (server epoch ms or null),
 *   status (the run's status when no answer says it yet, e.g. from the status document)}
 * @returns {rows, running, summary, note}; each row {key, state ("done", "current" or "todo"), label (the
 *   state in words, for screen readers), name, detail (the step's last detail and counts), time (its
 *   duration, its time so far, or for a step to come its usual time), remark (slower than usual, what ended
 *   the run here, or for the current step its usual time), flag ("slow", "ended" or "")}
 */
export function timelineModel(run, ctx = {}) {
  const status = isObject(run) && typeof run.status === "string" ? run.status : text(ctx.status);
  const running = status === "running";
  const usual = usualByName(ctx.stats);
  const live = running || !isObject(run) ? ctx.live ?? null : null;
  const { steps, current } = mergeLive(validSteps(run), running, live);
  const now = toNumber(ctx.now);
  const rows = steps.map((step, index) => {
    const u = usual.get(step.name) ?? null;
    const usually = u ? "usually " + durationText(u.median) : "";
    const row = { key: index + " " + step.name, name: step.name, detail: detailLine(step.detail, step.done, step.total) };
    if (index === current) {
      const elapsed = step.startedAt !== null && now !== null ? Math.max(0, (now - step.startedAt) / 1000) : null;
      const slow = isSlow(elapsed, u);
      return { ...row, state: "current", label: "Now", time: elapsed === null ? "" : durationText(elapsed) + " so far",
        remark: slow ? "taking longer than usual (" + usually + ")" : usually, flag: slow ? "slow" : "" };
    }
    const ending = index === steps.length - 1 && Object.hasOwn(ENDINGS, status) ? ENDINGS[status] : "";
    const slow = isSlow(step.seconds, u);
    return { ...row, state: "done", label: ending ? "Ended" : "Done",
      time: step.seconds === null ? "" : durationText(step.seconds),
      remark: [ending, slow ? "slower than usual (" + usually + ")" : ""].filter(Boolean).join("; "),
      flag: ending ? "ended" : slow ? "slow" : "" };
  });
  if (current !== -1) {
    for (const { name, usual: u } of stepsToCome(steps.map((s) => s.name), usual)) {
      rows.push({ key: "todo " + name, state: "todo", label: "To come", name, detail: "",
        time: "usually " + durationText(u.median), remark: "", flag: "" });
    }
  }
  return { rows, running: current !== -1, summary: summaryOf(rows, current !== -1, steps), note: noteOf(run, rows) };
}

function summaryOf(rows, running, steps) {
  if (!rows.length) return "";
  if (running) {
    const position = rows.findIndex((row) => row.state === "current") + 1;
    const todo = rows.filter((row) => row.state === "todo").length;
    return "Step " + position + (todo ? " of about " + (position + todo) : "");
  }
  const seconds = steps.map((s) => s.seconds).filter((s) => s !== null);
  const total = seconds.reduce((sum, s) => sum + s, 0);
  return rows.length + (rows.length === 1 ? " step" : " steps") + (seconds.length ? " in " + durationText(total) : "");
}

function noteOf(run, rows) {
  if (!isObject(run)) return rows.length ? "" : "Loading…";
  if (!rows.length) return "No steps were recorded for this run";
  return run.truncated === true ? "Only the run's first steps were kept; the last one counts the rest" : "";
}
