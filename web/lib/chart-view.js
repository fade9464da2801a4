/* What <snapshot-step-chart> draws: "where the time goes", a horizontal bar per step name of its median
 * duration over recent completed runs (GET /api/<job>/steps), a mark at its 90th percentile, the steps that
 * were slower than usual in the latest run flagged in words as well as colour; and the same figures as a
 * table, the chart's text equivalent.
 *
 * Pure: the geometry is computed for the width the element has (in CSS pixels), so the SVG is drawn at
 * its own size and its text is never scaled down with it; node tests drive it as tables
 * (tests/web/js/chart-view.test.mjs). */

import { countOf, durationText, isObject, toNumber } from "./format.js";

/** The most bars drawn: beyond, the longest ones (in run order); the table lists every step. */
export const CHART_MAX_BARS = 25;
/** The longest median spans 1 / P90_ROOM of the bars' room: the rest is for the p90 marks beyond it. */
export const P90_ROOM = 1.25;
/** Below this width a step's name takes a line of its own above its bar. */
export const NARROW_PX = 520;
/** Average glyph width in em of the labels' font, to cut a name that does not fit (its whole name is on hover
 * and in the table). */
const GLYPH_EM = 0.6;
const BAR_PX = 14;
const GAP_PX = 8;

/** The statistics' steps that can be charted: {name, runs, median, p90, share, latest, slow}. */
export function chartSteps(stats) {
  const list = isObject(stats) && Array.isArray(stats.steps) ? stats.steps : [];
  const seen = new Set();
  const steps = [];
  for (const step of list) {
    if (!isObject(step) || typeof step.name !== "string" || seen.has(step.name)) continue;
    const median = toNumber(step.medianSeconds);
    if (median === null || median < 0) continue;
    seen.add(step.name);
    const p90 = toNumber(step.p90Seconds);
    const share = toNumber(step.share);
    const latest = toNumber(step.latestSeconds);
    steps.push({
      name: step.name,
      runs: countOf(step.runs) ?? 0,
      median,
      p90: p90 !== null && p90 >= median ? p90 : null,
      share: share !== null && share >= 0 && share <= 1 ? share : null,
      latest: latest !== null && latest >= 0 ? latest : null,
      slow: step.slow === true,
    });
  }
  return steps;
}

/** "60 %", "< 1 %" ("" when unknown). */
export function shareText(share) {
  if (share === null) return "";
  if (share > 0 && share < 0.005) return "< 1 %";
  return Math.round(share * 100) + " %";
}

/** `name` cut to `chars` characters (with an ellipsis) when it is longer. */
export function fitText(name, chars) {
  const limit = Math.max(4, Math.floor(chars));
  const glyphs = Array.from(name);
  return glyphs.length <= limit ? name : glyphs.slice(0, limit - 1).join("") + "…";
}

/** The chart's words: a summary for its accessible name, a caption, and the table's rows. */
export function chartTexts(stats, steps) {
  const runs = isObject(stats) ? countOf(stats.runs) : null;
  const over = runs ? "over the last " + (runs === 1 ? "run" : runs + " runs") : "over recent runs";
  const medianRun = isObject(stats) ? toNumber(stats.medianRunSeconds) : null;
  const caption = "Median and 90th-percentile duration of each step " + over
    + (medianRun !== null ? "; a whole run: " + durationText(medianRun) + " (median)" : "");
  const table = steps.map((s) => ({
    name: s.name,
    median: durationText(s.median),
    p90: s.p90 === null ? "" : durationText(s.p90),
    share: shareText(s.share),
    latest: s.latest === null ? "" : durationText(s.latest) + (s.slow ? " (slower than usual)" : ""),
  }));
  if (!steps.length) return { caption, summary: "", table };
  const longest = steps.reduce((a, b) => (b.median > a.median ? b : a));
  const slow = steps.filter((s) => s.slow).map((s) => s.name);
  const summary = "Median duration per step " + over + ". Longest: " + longest.name + ", "
    + durationText(longest.median) + (longest.share !== null ? " (" + shareText(longest.share) + " of the time)" : "")
    + "." + (slow.length ? " Slower than usual in the latest run: " + slow.join(", ") + "." : "");
  return { caption, summary, table };
}

/** The bars drawn: every step when they are few, else the CHART_MAX_BARS longest medians, in their order. */
export function shownSteps(steps, max = CHART_MAX_BARS) {
  if (steps.length <= max) return steps;
  const keep = new Set([...steps].sort((a, b) => b.median - a.median).slice(0, max));
  return steps.filter((s) => keep.has(s));
}

/**
 * The chart's geometry for a `width` in px (fontSize: the labels' size in px).
 * @returns {width, height, narrow, rows: [{name, label (cut to fit by an average glyph), labelWidth (the room it
 *   has, to cut it again by its drawn width), title, labelX, labelY, barX, barY, barWidth, barHeight, p90X (or
 *   null), p90Clipped, valueX, valueY, value, slow}]}
 */
export function chartGeometry(steps, { width, fontSize = 13 }) {
  const w = Math.max(160, Math.floor(toNumber(width) ?? 0));
  const narrow = w < NARROW_PX;
  const glyph = fontSize * GLYPH_EM;
  const valueWidth = Math.ceil(fontSize * 11); // "9 min 59 s · slow" in bold, and a gap
  const labelWidth = narrow ? w : Math.min(260, Math.floor(w * 0.34));
  const barX = narrow ? 0 : labelWidth + GAP_PX;
  const span = Math.max(0, w - barX - valueWidth) / P90_ROOM;
  const longest = Math.max(0, ...steps.map((s) => s.median));
  const scale = (seconds) => (longest > 0 ? (seconds / longest) * span : 0);
  const lineHeight = Math.ceil(fontSize * 1.4);
  const rowHeight = narrow ? lineHeight + BAR_PX + 12 : Math.max(BAR_PX + 12, lineHeight + 8);
  const rows = steps.map((s, i) => {
    const top = i * rowHeight;
    const barY = narrow ? top + lineHeight + 2 : top + (rowHeight - BAR_PX) / 2;
    const barWidth = s.median > 0 ? Math.max(1, scale(s.median)) : 0;
    // At the bar's end at least: a median drawn as a sliver may be wider than its scale.
    const p90X = s.p90 === null ? null : barX + Math.max(barWidth, Math.min(scale(s.p90), span * P90_ROOM));
    const end = Math.max(barX + barWidth, p90X ?? 0);
    return {
      name: s.name,
      label: fitText(s.name, (labelWidth - (narrow ? 0 : GAP_PX)) / glyph),
      labelWidth: labelWidth - (narrow ? 0 : GAP_PX),
      title: s.name + ": median " + durationText(s.median) + (s.p90 !== null ? ", p90 " + durationText(s.p90) : "")
        + (s.slow ? "; slower than usual in the latest run" : ""),
      labelX: 0,
      labelY: narrow ? top + fontSize : top + rowHeight / 2,
      barX: round(barX),
      barY: round(barY),
      barWidth: round(barWidth),
      barHeight: BAR_PX,
      p90X: p90X === null ? null : round(p90X),
      p90Clipped: s.p90 !== null && longest > 0 && s.p90 / longest > P90_ROOM,
      valueX: round(end + 6),
      valueY: round(barY + BAR_PX / 2),
      value: durationText(s.median) + (s.slow ? " · slow" : ""),
      slow: s.slow,
    };
  });
  return { width: w, height: rows.length * rowHeight, narrow, rows };
}

/** Everything the element needs: the geometry of the bars shown, the words, and what was left out. */
export function chartModel(stats, { width, fontSize = 13, max = CHART_MAX_BARS } = {}) {
  const steps = chartSteps(stats);
  const shown = shownSteps(steps, max);
  const texts = chartTexts(stats, steps);
  const left = steps.length - shown.length;
  let note = "";
  if (!steps.length) note = "No completed run with steps yet";
  else if (left > 0) note = "The " + shown.length + " longest of " + steps.length + " steps; the table lists them all";
  return { ...texts, note, empty: !steps.length, geometry: chartGeometry(shown, { width, fontSize }) };
}

function round(n) {
  return Math.round(n * 10) / 10;
}
