/* The look of <snapshot-steps> and <snapshot-step-chart>, on top of theme.js's custom properties and
 * panel-style.js's panel. A state is told in words (visually hidden for screen readers) and by a mark's
 * shape as well as a colour; greyed steps keep the muted colour's contrast, never an opacity. */

export const STEPS_CSS = `
.steps-summary { color: var(--_muted); font-size: 13px; font-variant-numeric: tabular-nums; }
.steps-list {
  list-style: none;
  margin: 0;
  padding: 0;
  max-height: min(70vh, 48em);
  overflow-y: auto;
}
.steps-list[tabindex]:focus-visible { outline: 2px solid var(--_accent); outline-offset: 2px; }
.step {
  display: grid;
  grid-template-columns: 1.4em minmax(0, 1fr) auto;
  column-gap: 8px;
  align-items: baseline;
  padding: 5px 4px;
  border-bottom: 1px solid var(--_border);
}
.step:last-child { border-bottom: 0; }
.step-mark { grid-row: 1 / span 3; text-align: center; color: var(--_ok); }
.step-mark::before { content: "✓"; }
.step-name { min-width: 0; overflow-wrap: anywhere; }
.step-time {
  white-space: nowrap;
  text-align: right;
  font-variant-numeric: tabular-nums;
  color: var(--_muted);
}
.step-detail, .step-remark {
  grid-column: 2 / 4;
  min-width: 0;
  font-size: 13px;
  color: var(--_muted);
  overflow-wrap: anywhere;
}
.step-detail:empty, .step-remark:empty { display: none; }
.step[data-state="current"] {
  background: color-mix(in srgb, var(--_accent) 7%, transparent);
  box-shadow: inset 3px 0 0 var(--_accent);
}
.step[data-state="current"] .step-name { font-weight: 600; }
.step[data-state="current"] .step-time { color: var(--_fg); }
.step[data-state="current"] .step-mark { color: var(--_accent); }
.step[data-state="current"] .step-mark::before { content: "▶"; }
.step[data-state="todo"] .step-name, .step[data-state="todo"] .step-mark { color: var(--_muted); }
.step[data-state="todo"] .step-mark::before { content: "○"; }
.step[data-flag="slow"] .step-remark { color: var(--_warn); }
.step[data-flag="ended"] .step-remark, .step[data-flag="ended"] .step-mark { color: var(--_error); }
.step[data-flag="ended"] .step-mark::before { content: "✕"; }
`;

export const CHART_CSS = `
/* The SVG is drawn for the chart's width, a moment after that width changes: until then it is clipped, never
 * pushing the page wider. */
.chart { width: 100%; min-width: 0; overflow: hidden; }
.chart svg { display: block; }
.chart text { fill: var(--_fg); font-size: 13px; font-family: inherit; }
.chart .chart-value { fill: var(--_muted); font-variant-numeric: tabular-nums; }
.chart .chart-bar { fill: var(--_accent); }
.chart .chart-p90 { stroke: var(--_fg); stroke-width: 2; }
.chart .chart-clipped { fill: var(--_fg); }
.chart [data-slow] .chart-bar { fill: var(--_warn); }
.chart [data-slow] .chart-value { fill: var(--_warn); font-weight: 600; }
.chart-legend { margin: 8px 0 0; font-size: 12px; color: var(--_muted); }
.chart-legend span { white-space: nowrap; }
.chart-legend .key-bar { display: inline-block; width: 14px; height: 8px; background: var(--_accent); vertical-align: middle; }
.chart-legend .key-p90 { display: inline-block; width: 2px; height: 12px; background: var(--_fg); vertical-align: middle; }
.chart-legend .key-slow { display: inline-block; width: 14px; height: 8px; background: var(--_warn); vertical-align: middle; }
details { margin-top: 10px; }
summary { cursor: pointer; font-size: 13px; color: var(--_accent); width: fit-content; }
.chart-table { width: 100%; border-collapse: collapse; font-size: 13px; margin-top: 6px; }
.chart-table caption { text-align: left; color: var(--_muted); padding: 4px 0; caption-side: top; }
.chart-table th, .chart-table td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--_border); }
.chart-table thead th { font-size: 12px; font-weight: 600; color: var(--_muted); }
.chart-table tbody th { font-weight: normal; overflow-wrap: anywhere; }
.chart-table td { white-space: nowrap; font-variant-numeric: tabular-nums; }
/* Narrow: each step's figures on a line under its name; the column headings stay for screen readers. */
@container snapshot-panel (max-width: 540px) {
  .chart-table, .chart-table tbody { display: block; }
  .chart-table caption { display: block; }
  .chart-table thead {
    position: absolute;
    width: 1px;
    height: 1px;
    overflow: hidden;
    clip-path: inset(50%);
    white-space: nowrap;
  }
  .chart-table tr { display: flex; flex-wrap: wrap; gap: 2px 12px; padding: 6px 0; border-bottom: 1px solid var(--_border); }
  .chart-table th, .chart-table td { display: block; padding: 0; border-bottom: 0; }
  .chart-table tbody th { flex: 1 1 100%; }
  .chart-table td[data-label]::before { content: attr(data-label) " "; color: var(--_muted); }
}
`;
