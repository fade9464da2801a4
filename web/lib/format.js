/* Words and numbers for the snapshot elements: pure functions of their arguments (no clock, no DOM), so they
 * are tested with node's own test runner (tests/web/js/). Times are epoch milliseconds; "now" is always
 * passed in, as the server's clock reads it (see clock.js), never Date.now(). */

export const OUTCOMES = Object.freeze({
  completed: "Completed",
  error: "Failed",
  cancelled: "Cancelled",
  running: "Interrupted",
});

export const TRIGGERS = Object.freeze({
  startup: "start-up",
  timer: "scheduled",
  http: "manual",
  file: "trigger file",
});

export const CHECK_KINDS = Object.freeze({ late: "Late", long: "Long run", fast: "Suspiciously fast" });

/** Epoch ms of an ISO time, or null. */
export function parseTime(value) {
  if (typeof value !== "string" || !value) return null;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : null;
}

/** A finite number, or null (strings, NaN, null and the like are not numbers here). */
export function toNumber(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** `table[key]` when `key` is one of the table's own names, else "": a string from the network such as
 * "constructor" must not reach what every object inherits. */
function own(table, key) {
  return typeof key === "string" && Object.hasOwn(table, key) ? table[key] : "";
}

export function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** `value` if it is a string, else "" (status documents come from the network: trust no field's type). */
export function text(value) {
  return typeof value === "string" ? value : "";
}

export function plural(n, word) {
  return n + " " + word + (n === 1 ? "" : "s");
}

export function firstLine(value) {
  const line = String(value).split("\n", 1)[0];
  return line.length > 200 ? line.slice(0, 199) + "…" : line;
}

/** "12 s", "3 min 20 s", "1 h 5 min" ("" when unknown). */
export function durationText(seconds) {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds < 0.1) return "< 0.1 s";
  if (seconds < 10) return (Math.round(seconds * 10) / 10) + " s";
  // Whole seconds first, so that rounding carries into the minutes (59.6 s is "1 min", never "60 s").
  const whole = Math.round(seconds);
  if (whole < 60) return whole + " s";
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) {
    const rest = whole - minutes * 60;
    return minutes + " min" + (rest && minutes < 10 ? " " + rest + " s" : "");
  }
  const hours = Math.floor(minutes / 60);
  return hours + " h" + (minutes % 60 ? " " + (minutes % 60) + " min" : "");
}

/** The idle bar's line, from the milliseconds left until the next automatic run (null: unknown); `noun` is
 * what a run is called ("snapshot" on the default job's bar, "run" on a named job's). */
export function countdownText(ms, noun = "snapshot") {
  if (ms === null) return "Waiting for the next " + noun;
  if (ms <= 0) return "Next " + noun + " starting…";
  if (ms < 60000) return "Next " + noun + " in less than a minute";
  return "Next " + noun + " in " + plural(Math.floor(ms / 60000), "minute");
}

/** "a", "a and b", "a, b and c": job names in a sentence. */
export function listText(names) {
  if (names.length <= 1) return names.join("");
  return names.slice(0, -1).join(", ") + " and " + names[names.length - 1];
}

/** "just now", "5 minutes ago", "3 hours ago", "2 days ago"; "" when `now` is unknown. */
export function agoText(at, now) {
  if (now === null || at === null) return "";
  const seconds = (now - at) / 1000;
  if (seconds < 60) return "just now";
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return plural(minutes, "minute") + " ago";
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return plural(hours, "hour") + " ago";
  return plural(Math.floor(hours / 24), "day") + " ago";
}

/** The history's short form of agoText: "5 min ago", "3 h ago". */
export function shortAgo(at, now) {
  if (now === null || at === null) return "";
  const seconds = (now - at) / 1000;
  if (seconds < 60) return "just now";
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return minutes + " min ago";
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return hours + " h ago";
  return plural(Math.floor(hours / 24), "day") + " ago";
}

export function etaText(seconds) {
  if (seconds <= 0) return "taking longer than estimated";
  if (seconds < 60) return "less than a minute left";
  return "about " + Math.round(seconds / 60) + " min left";
}

/** A progress document's percent, clamped to 0..100 (0 when absent). */
export function percentOf(progress) {
  const value = isObject(progress) ? toNumber(progress.progress) : null;
  return value === null ? 0 : Math.min(100, Math.max(0, value));
}

/** What a screen reader says of the progress bar: "45 %, Fetching GitHub PRs (5/15 repos)", and the step's
 * detail after a dash when there is one: "45 %, Fetching GitHub PRs — repo 5/15: octo/api". */
export function progressValueText(percent, step, detail = "") {
  const shown = Math.round(percent * 10) / 10;
  return shown + " %" + (step ? ", " + step : "") + (detail ? (step ? " — " : ", ") + detail : "");
}

/** A count that may be shown: a whole number from 0 to 10^12 (the job's report is cut to that), else null. */
export function countOf(value) {
  const n = toNumber(value);
  return n !== null && Number.isInteger(n) && n >= 0 && n <= 1e12 ? n : null;
}

/** A step's counts: "5/15", "5 done" (no total), "0/15" (a total alone: none done yet), "" (neither). */
export function countsText(done, total) {
  const d = countOf(done);
  const t = countOf(total);
  if (t !== null) return (d ?? 0) + "/" + t;
  return d === null ? "" : d + " done";
}

/** Whether `said` counts out of `total` itself: "repo 5/15: octo/api" for 15 (a job that names the one it is
 * at before it counts it done says 5/15 while done is 4). */
function countsItself(said, total) {
  const t = countOf(total);
  return t !== null && new RegExp("\\d\\s*/\\s*" + t + "(?!\\d)").test(said);
}

/** The line under a step: its detail, with its counts before it unless the detail already says them ("repo
 * 5/15: octo/api" stays as it is; "octo/api" with 5 of 15 done becomes "5/15 · octo/api"). */
export function detailLine(detail, done, total) {
  const said = text(detail).trim();
  const counts = countsText(done, total);
  if (!counts) return said;
  if (!said) return counts;
  return said.includes(counts) || countsItself(said, total) ? said : counts + " · " + said;
}

export function outcomeLabel(status) {
  return own(OUTCOMES, status) || text(status) || "Unknown";
}

export function triggerLabel(source) {
  return own(TRIGGERS, source) || text(source) || "?";
}

/** The first check's line for the bar, and every check for its tooltip. */
export function checksText(checks) {
  const list = Array.isArray(checks) ? checks.filter(isObject) : [];
  if (!list.length) return { line: "", title: "" };
  const first = text(list[0].message) || own(CHECK_KINDS, list[0].kind) || "check failed";
  return {
    line: "⚠ " + first + (list.length > 1 ? " (+" + (list.length - 1) + " more)" : ""),
    title: list
      .map((check) => (own(CHECK_KINDS, check.kind) || text(check.kind) || "Check") + ": " + text(check.message))
      .join("\n"),
  };
}

/** "14:05" in the reader's own time zone. */
export function localClock(ms) {
  try {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  } catch (e) {
    return "";
  }
}

/** When a time to come is, in the reader's own time zone, from `now`: "at 14:05" the same day, "on Tue at
 * 14:05" within the week, else with its date. */
export function laterText(at, now) {
  try {
    const when = new Date(at);
    const clock = localClock(at);
    if (when.toDateString() === new Date(now).toDateString()) return "at " + clock;
    if (at - now < 6 * 86400000) return "on " + when.toLocaleDateString([], { weekday: "short" }) + " at " + clock;
    return "on " + when.toLocaleDateString() + " at " + clock;
  } catch (e) {
    return "";
  }
}

/** The date and time in the reader's own locale and time zone. */
export function localDateTime(ms) {
  try {
    return new Date(ms).toLocaleString();
  } catch (e) {
    return "";
  }
}

/** The line for a paused service, and its tooltip; `nouns`: what its runs are called ("runs" for a named job). */
export function pausedTexts(paused, nouns = "snapshots") {
  const reason = text(paused.reason);
  const since = parseTime(paused.since);
  return {
    line: "Paused — automatic " + nouns + " off" + (reason ? " (" + reason + ")" : ""),
    title: "Paused" + (since !== null ? " since " + localDateTime(since) : "") + (reason ? ": " + reason : ""),
  };
}
