/* The look of the page's panels (<snapshot-history>, <snapshot-log>), on top of theme.js's custom properties.
 * Narrow layouts follow the element's own width (a container query), not the window's: a panel in a
 * dashboard's side column is as narrow as one on a phone. Extra properties: --snapshot-log-bg and
 * --snapshot-log-fg (the log's own colours, dark in both themes, like a terminal). */

export const PANEL_CSS = `
:host {
  display: block;
  container: snapshot-panel / inline-size;
  margin: 0 0 24px;
}
.panel {
  padding: 14px 16px;
  border: 1px solid var(--_border);
  border-radius: 8px;
  background: var(--_bg);
  min-width: 0;
}
.panel-head {
  display: flex;
  align-items: baseline;
  gap: 4px 12px;
  flex-wrap: wrap;
  margin-bottom: 8px;
}
h2 { margin: 0; font-size: 17px; font-weight: 650; overflow-wrap: anywhere; }
.panel-note { color: var(--_muted); font-size: 13px; }
.panel-actions { display: flex; align-items: baseline; gap: 12px; margin-left: auto; }
.panel-link { font-size: 13px; color: var(--_accent); }
.panel-button { font-size: 13px; min-height: 0; padding: 4px 12px; }
.panel-button:hover:not(:disabled) { background: color-mix(in srgb, var(--_fg) 10%, transparent); }
@container snapshot-panel (max-width: 540px) {
  .panel { padding: 12px 10px; }
}
`;

export const HISTORY_CSS = `
#history-more { margin-top: 10px; }
/* The table scrolls sideways inside the panel when it is too narrow for it; the page itself never does. */
.history-scroll { overflow-x: auto; }
.history-table { width: 100%; border-collapse: collapse; font-size: 14px; }
.history-table th {
  text-align: left;
  font-size: 12px;
  font-weight: 600;
  color: var(--_muted);
  padding: 4px 8px;
  border-bottom: 1px solid var(--_border);
}
.history-table td {
  padding: 5px 8px;
  border-bottom: 1px solid var(--_border);
  vertical-align: top;
}
tbody tr { cursor: pointer; }
/* Light tints only: the outcome's coloured words must keep their contrast on them (WCAG AA). The run shown
 * also gets a bar in the accent colour, which needs no colour vision to tell from a hover. */
tbody tr:hover { background: color-mix(in srgb, var(--_fg) 4%, transparent); }
tbody tr[aria-current="true"] { background: color-mix(in srgb, var(--_accent) 6%, transparent); }
tbody tr[aria-current="true"] > td:first-child { box-shadow: inset 3px 0 0 var(--_accent); }
.history-when, .history-duration { white-space: nowrap; font-variant-numeric: tabular-nums; }
.history-trigger { white-space: nowrap; }
td.history-job { font-weight: 600; overflow-wrap: anywhere; min-width: 5em; }
.history-filter { display: inline-flex; align-items: baseline; gap: 6px; margin-left: auto; font-size: 13px;
  color: var(--_muted); max-width: 100%; }
.history-filter select { font-size: 13px; max-width: 16em; min-width: 0; }
.history-why { max-width: 420px; min-width: 12em; overflow-wrap: anywhere; }
.history-reason { display: block; }
.history-error { display: block; color: var(--_error); }
.history-step { display: block; color: var(--_muted); }

/* The outcome: a word and a colour, and a shape that does not depend on telling colours apart. */
.history-open {
  font-weight: 600;
  min-height: 0;
  padding: 0;
  border: 0;
  border-radius: 2px;
  background: none;
  color: inherit;
  white-space: nowrap;
}
.outcome::before { content: "● "; }
.outcome[data-outcome="completed"] { color: var(--_ok); }
.outcome[data-outcome="completed"]::before { content: "✓ "; }
.outcome[data-outcome="error"] { color: var(--_error); }
.outcome[data-outcome="error"]::before { content: "✕ "; }
.outcome[data-outcome="cancelled"] { color: var(--_warn); }
.outcome[data-outcome="cancelled"]::before { content: "■ "; }
.outcome[data-outcome="running"] { color: var(--_accent); }
.outcome[data-outcome="running"]::before { content: "▶ "; }

/* Narrow: each run's outcome, start, duration and trigger on a line (wrapping as needed), the reason and the
 * error under them at full width. The column headings stay for screen readers only. */
@container snapshot-panel (max-width: 540px) {
  .history-table, .history-table tbody { display: block; }
  .history-table thead {
    position: absolute;
    width: 1px;
    height: 1px;
    overflow: hidden;
    clip-path: inset(50%);
    white-space: nowrap;
  }
  .history-table tr {
    display: flex;
    flex-wrap: wrap;
    align-items: baseline;
    gap: 2px 12px;
    padding: 6px 4px;
    border-bottom: 1px solid var(--_border);
  }
  .history-table tr[aria-current="true"] { padding-left: 10px; box-shadow: inset 3px 0 0 var(--_accent); }
  .history-table tr[aria-current="true"] > td:first-child { box-shadow: none; }
  .history-table td { display: block; padding: 0; border-bottom: 0; }
  .history-table td.history-why { flex: 1 1 100%; max-width: none; min-width: 0; }
  .history-table td.history-why:empty { display: none; }
}
`;

export const LOG_CSS = `
:host(:not([open])) { margin: 0; }
.log-trimmed { margin: 0 0 6px; font-size: 13px; color: var(--_muted); }
.log-trimmed a { color: var(--_accent); }
.log-lines {
  max-height: 55vh;
  min-height: 4em;
  overflow: auto;
  padding: 8px 10px;
  border-radius: 6px;
  background: var(--snapshot-log-bg, #0f1218);
  color: var(--snapshot-log-fg, #d6dbe4);
  font: 12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  white-space: pre-wrap;
  overflow-wrap: anywhere;
}
.log-line[data-stream="err"] { color: #ffb3b3; }
`;
