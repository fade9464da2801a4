/* <snapshot-step-chart server="https://snap.example.com" job="snapshot" runs="20">: where the time of a run
 * goes, as an SVG bar chart of each step's median duration over the last `runs` completed runs (1 to 100;
 * default: the service's, 20), its 90th percentile as a mark, and the steps that were slower than usual in
 * the latest run in the warning colour and the word "slow". The same figures are a table under it (its
 * text equivalent, in a disclosure), and the chart's accessible name sums it up.
 *
 * It follows the page's shared status stream (lib/stream.js) and reads GET /api/<job>/steps through
 * lib/api.js when the stream connects and when the last run changes (a run ended): never on a timer. The
 * chart is drawn at the width it has (a ResizeObserver), so its text keeps its size on a phone. */

import { Api } from "./lib/api.js";
import { chartModel } from "./lib/chart-view.js";
import { adoptStyles, define, h, serverOf, setAttr, setText } from "./lib/dom.js";
import { isObject } from "./lib/format.js";
import { PANEL_CSS } from "./lib/panel-style.js";
import { Refetch } from "./lib/refetch.js";
import { CHART_CSS } from "./lib/steps-style.js";
import { subscribe } from "./lib/stream.js";
import { THEME_CSS } from "./lib/theme.js";

const SVG = "http://www.w3.org/2000/svg";
const COLUMNS = [["median", "Median"], ["p90", "90th percentile"], ["share", "Share of the time"],
  ["latest", "Latest run"]];

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  node.append(...children);
  return node;
}

/** Cut a label further while its drawn text is wider than `room` (the average glyph the geometry assumes is
 * too narrow for a name in capitals, say); its whole name stays in the row's title and the table. */
function fitLabel(node, name, room) {
  if (!node || node.getComputedTextLength() <= room) return;
  const glyphs = Array.from(name);
  let fits = 1;
  let over = Array.from(node.textContent).length;
  while (over - fits > 1) {
    const mid = Math.floor((fits + over) / 2);
    node.textContent = glyphs.slice(0, mid).join("") + "…";
    if (node.getComputedTextLength() <= room) fits = mid;
    else over = mid;
  }
  node.textContent = glyphs.slice(0, fits).join("") + "…";
}

/** Why the figures cannot be shown, from a failed read. */
function problemText(answer) {
  if (answer.status === 0) return "Step figures unavailable — the service cannot be reached";
  if (answer.status === 401) return "The step figures need the service's token";
  if (answer.status === 404) return "This service keeps no step figures";
  return "Step figures unavailable: " + answer.message;
}

export class SnapshotStepChart extends HTMLElement {
  static observedAttributes = ["server", "job", "runs"];

  constructor() {
    super();
    this.stats = null;
    this.problem = null;
    this.width = 0;
    this.unsubscribe = null;
    const root = this.attachShadow({ mode: "open" });
    adoptStyles(root, THEME_CSS, PANEL_CSS, CHART_CSS);
    const ui = {
      title: h("h2", { id: "chart-title", "data-testid": "chart-title", text: "Where the time goes" }),
      note: h("span", { class: "panel-note", id: "chart-note", "data-testid": "chart-note", "aria-live": "polite" }),
      chart: h("div", { class: "chart", id: "chart", "data-testid": "chart" }),
      legend: h("p", { class: "chart-legend", id: "chart-legend", "aria-hidden": "true" },
        h("span", {}, h("span", { class: "key-bar" }), " median"), "  ",
        h("span", {}, h("span", { class: "key-p90" }), " 90th percentile"), "  ",
        h("span", {}, h("span", { class: "key-slow" }), " slow: slower than usual in the latest run")),
      caption: h("caption", { id: "chart-caption" }),
      rows: h("tbody", { id: "chart-rows", "data-testid": "chart-rows" }),
    };
    const head = h("tr", {}, h("th", { scope: "col", text: "Step" }),
      ...COLUMNS.map(([, label]) => h("th", { scope: "col", text: label })));
    ui.table = h("table", { class: "chart-table", id: "chart-table", "data-testid": "chart-table", part: "table" },
      ui.caption, h("thead", {}, head), ui.rows);
    ui.details = h("details", { id: "chart-details", "data-testid": "chart-details", part: "table-toggle" },
      h("summary", { text: "The figures as a table" }), ui.table);
    root.append(h("section", { class: "panel", id: "step-chart", "data-testid": "step-chart", part: "panel",
      "aria-labelledby": "chart-title" },
    h("div", { class: "panel-head" }, ui.title, ui.note), ui.chart, ui.legend, ui.details));
    this.ui = ui;
    this.resize = new ResizeObserver((entries) => {
      const width = Math.floor(entries[entries.length - 1].contentRect.width);
      if (width !== this.width) {
        this.width = width;
        this.renderChart();
      }
    });
  }

  connectedCallback() {
    const server = serverOf(this);
    const job = this.getAttribute("job") || null;
    const runs = Number.parseInt(this.getAttribute("runs") || "", 10);
    const query = Number.isInteger(runs) && runs >= 1 && runs <= 100 ? "steps?runs=" + runs : "steps";
    this.api = new Api(server, job);
    this.stats = null;
    this.problem = null;
    this.reader = new Refetch(() => this.api.readJson(query), (answer) => this.onStats(answer));
    this.unsubscribe = subscribe(server, job, (kind, stream) => this.onStream(kind, stream));
    this.resize.observe(this.ui.chart);
    this.render();
  }

  disconnectedCallback() {
    if (this.unsubscribe) this.unsubscribe();
    this.unsubscribe = null;
    this.reader.close();
    this.resize.disconnect();
  }

  attributeChangedCallback(name, before, after) {
    if (before === after || !this.isConnected) return;
    this.disconnectedCallback();
    this.connectedCallback();
  }

  onStream(kind, stream) {
    if (stream.state === "open" && isObject(stream.doc)) {
      const last = isObject(stream.doc.lastRun) ? stream.doc.lastRun : null;
      if (last !== null && typeof last.runId === "string") {
        this.reader.want([stream.generation, last.runId, last.status, last.finishedAt].join("|"));
      } else if (this.stats === null) {
        this.stats = { runs: 0, steps: [] }; // no run on record: nothing to ask for, nothing to chart
        this.render();
      }
    } else if (stream.state === "unauthorized" && this.stats === null) {
      this.problem = "Enter the token above to see the step figures";
      this.render();
    }
  }

  onStats(answer) {
    if (answer.ok && isObject(answer.body)) {
      this.stats = answer.body;
      this.problem = null;
    } else if (!answer.ok) {
      this.problem = problemText(answer);
    }
    this.render();
  }

  model() {
    return chartModel(this.stats, { width: this.width || this.ui.chart.clientWidth });
  }

  render() {
    const model = this.model();
    setText(this.ui.note, this.problem || (this.stats === null ? "Loading…" : model.note));
    setText(this.ui.caption, model.caption);
    this.ui.rows.replaceChildren(...model.table.map((row) => h("tr", {}, h("th", { scope: "row", text: row.name }),
      ...COLUMNS.map(([field, label]) => h("td", { "data-label": label, text: row[field] || "—" })))));
    this.ui.details.hidden = model.empty;
    this.ui.legend.hidden = model.empty;
    this.renderChart(model);
  }

  /** The SVG, drawn for the chart's width: a row per step, its name, its median's bar, its p90's mark. */
  renderChart(model = this.model()) {
    const box = this.ui.chart;
    if (model.empty || this.width === 0) {
      box.replaceChildren();
      return;
    }
    const g = model.geometry;
    const rows = g.rows.map((row) => {
      const labelBaseline = g.narrow ? "auto" : "middle";
      const parts = [
        svg("title", {}, row.title),
        svg("text", { class: "chart-label", x: row.labelX, y: row.labelY, "dominant-baseline": labelBaseline },
          row.label),
        svg("rect", { class: "chart-bar", x: row.barX, y: row.barY, width: row.barWidth, height: row.barHeight,
          rx: 2 }),
      ];
      if (row.p90X !== null) {
        parts.push(svg("line", { class: "chart-p90", x1: row.p90X, x2: row.p90X, y1: row.barY - 3,
          y2: row.barY + row.barHeight + 3 }));
      }
      if (row.p90Clipped) {
        const x = row.p90X;
        const y = row.barY + row.barHeight / 2;
        parts.push(svg("path", { class: "chart-clipped", d: `M${x + 1} ${y - 4} L${x + 5} ${y} L${x + 1} ${y + 4} Z` }));
      }
      parts.push(svg("text", { class: "chart-value", x: row.valueX + (row.p90Clipped ? 5 : 0), y: row.valueY,
        "dominant-baseline": "middle" }, row.value));
      return svg("g", { class: "chart-row", part: "bar", "data-slow": row.slow ? "" : null }, ...parts);
    });
    const chart = svg("svg", { width: g.width, height: g.height, viewBox: `0 0 ${g.width} ${g.height}`, role: "img",
      "aria-label": model.summary, part: "chart", id: "chart-svg", "data-testid": "chart-svg" }, ...rows);
    box.replaceChildren(chart);
    setAttr(box, "data-narrow", g.narrow ? "" : null);
    g.rows.forEach((row, i) => fitLabel(chart.querySelectorAll(".chart-label")[i], row.name, row.labelWidth));
  }
}

define("snapshot-step-chart", SnapshotStepChart);
