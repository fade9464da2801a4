/* <snapshot-steps server="https://snap.example.com" job="snapshot" run-id="...">: one run's steps, as a list.
 *
 * Without `run-id` it follows the running run, else the last one; with it, that run. The steps done show
 * their durations, the current one its detail and counts and its time so far, and (while a run goes on)
 * the steps still to come as the latest completed run had them, greyed, with their usual durations.
 *
 * It follows the page's shared status stream (lib/stream.js; it opens none of its own) and reads
 * GET /api/<job>/runs/<runId>/steps through lib/api.js when the stream says the run's step changed (a new
 * step, or a new start of it), when the run ends, and when the stream connects: never for a new detail,
 * which the status document itself carries, and never on a timer. GET /api/<job>/steps (the usual
 * durations) is read when the last completed run changes. Property `runId` mirrors the attribute. */

import { Api } from "./lib/api.js";
import { adoptStyles, define, h, serverOf, setAttr, setText } from "./lib/dom.js";
import { isObject, localDateTime, outcomeLabel, parseTime, text } from "./lib/format.js";
import { PANEL_CSS } from "./lib/panel-style.js";
import { Refetch } from "./lib/refetch.js";
import { liveOf, timelineModel, validSteps } from "./lib/steps-view.js";
import { STEPS_CSS } from "./lib/steps-style.js";
import { subscribe } from "./lib/stream.js";
import { THEME_CSS } from "./lib/theme.js";

const FIELDS = ["name", "time", "detail", "remark"];

/** Why the steps cannot be shown, from a failed read. */
function problemText(answer) {
  if (answer.status === 0) return "Steps unavailable — the service cannot be reached";
  if (answer.status === 401) return "The steps need the service's token";
  return "Steps unavailable: " + answer.message;
}

export class SnapshotSteps extends HTMLElement {
  static observedAttributes = ["server", "job", "run-id"];

  constructor() {
    super();
    this.stream = null;
    this.unsubscribe = null;
    this.ticker = null;
    this.run = null; // the steps answer of the run shown
    this.stats = null; // the statistics answer
    this.problem = null;
    const root = this.attachShadow({ mode: "open" });
    adoptStyles(root, THEME_CSS, PANEL_CSS, STEPS_CSS);
    this.ui = {
      title: h("h2", { id: "steps-title", "data-testid": "steps-title", text: "Steps" }),
      summary: h("span", { class: "steps-summary", id: "steps-summary", "data-testid": "steps-summary" }),
      note: h("span", { class: "panel-note", id: "steps-note", "data-testid": "steps-note", "aria-live": "polite" }),
      list: h("ol", { class: "steps-list", id: "steps-list", "data-testid": "steps-list", part: "list",
        "aria-labelledby": "steps-title" }),
    };
    root.append(h("section", { class: "panel", id: "steps", "data-testid": "steps", part: "panel",
      "aria-labelledby": "steps-title" },
    h("div", { class: "panel-head" }, this.ui.title, this.ui.summary, this.ui.note), this.ui.list));
  }

  /** The run shown when `run-id` is set, else null (the element follows the running or last run). */
  get runId() {
    return this.getAttribute("run-id") || null;
  }

  set runId(value) {
    if (value) this.setAttribute("run-id", String(value));
    else this.removeAttribute("run-id");
  }

  connectedCallback() {
    const server = serverOf(this);
    const job = this.getAttribute("job") || null;
    this.api = new Api(server, job);
    this.run = null;
    this.stats = null;
    this.problem = null;
    this.steps = new Refetch((runId) => this.api.readJson("runs/" + encodeURIComponent(runId) + "/steps"),
      (answer, key, runId) => this.onSteps(answer, runId));
    this.usual = new Refetch(() => this.api.readJson("steps"), (answer) => this.onStats(answer));
    this.unsubscribe = subscribe(server, job, (kind, stream) => this.onStream(kind, stream));
    // The current step's time so far moves with time alone; nothing is fetched for it.
    this.ticker = setInterval(() => this.render(), 1000);
    this.render();
  }

  disconnectedCallback() {
    if (this.unsubscribe) this.unsubscribe();
    this.unsubscribe = null;
    this.stream = null;
    clearInterval(this.ticker);
    this.ticker = null;
    this.steps.close();
    this.usual.close();
  }

  attributeChangedCallback(name, before, after) {
    if (before === after || !this.isConnected) return;
    this.disconnectedCallback();
    this.connectedCallback();
  }

  /** The run to show: the one named, else the running one, else the last one (or null: none yet). */
  shownRunId() {
    if (this.runId) return this.runId;
    const doc = this.stream && this.stream.doc;
    if (!isObject(doc)) return null;
    if (doc.running === true && isObject(doc.currentRun) && typeof doc.currentRun.runId === "string") {
      return doc.currentRun.runId;
    }
    return isObject(doc.lastRun) && typeof doc.lastRun.runId === "string" ? doc.lastRun.runId : null;
  }

  onStream(kind, stream) {
    this.stream = stream;
    if (stream.state === "open" && isObject(stream.doc)) {
      const doc = stream.doc;
      const runId = this.shownRunId();
      const last = isObject(doc.lastRun) ? doc.lastRun : {};
      // What the run's fetched steps reflect: the connection, and for the running run its step and the
      // step's start (a step begun again under the same name), for the last run its end.
      const live = liveOf(doc, runId);
      const ended = last.runId === runId ? [last.status, last.finishedAt] : [];
      if (runId !== null) {
        this.steps.want([stream.generation, runId, live ? live.step : "", live ? live.startedAt : "", ...ended]
          .join("|"), runId);
      }
      // No run on record: no usual durations to ask for.
      if (typeof last.runId === "string") this.usual.want([stream.generation, last.runId, last.status].join("|"));
    }
    this.render();
  }

  onSteps(answer, runId) {
    if (answer.ok && isObject(answer.body)) {
      this.run = { ...answer.body, runId };
      this.problem = null;
    } else if (!answer.ok) {
      if (this.run !== null && this.run.runId !== runId) this.run = null;
      this.problem = problemText(answer);
    }
    this.render();
  }

  onStats(answer) {
    // The usual durations are a nicety: a service that has none (404) or cannot say shows the steps alone.
    if (answer.ok && isObject(answer.body)) this.stats = answer.body;
    this.render();
  }

  render() {
    const runId = this.shownRunId();
    const stream = this.stream;
    const doc = stream && stream.state === "open" ? stream.doc : null;
    const run = this.run !== null && this.run.runId === runId ? this.run : null;
    const model = timelineModel(run, {
      stats: this.stats,
      live: liveOf(doc, runId),
      now: stream ? stream.clock.now(performance.now()) : null,
      status: isObject(doc) && doc.running === true && liveOf(doc, runId) ? "running" : "",
    });
    this.renderTitle(run, runId, model);
    setText(this.ui.summary, model.summary);
    let note = this.problem || (runId === null ? "" : model.note);
    if (runId === null && isObject(doc)) note = "No snapshot has run yet";
    else if (runId === null && stream && stream.state === "unauthorized") note = "Enter the token above to see the steps";
    setText(this.ui.note, note);
    this.renderRows(runId === null ? [] : model.rows);
  }

  /** "Steps of the running snapshot", "Steps of the last snapshot — Completed"; for a run named by `run-id`,
   * like its log's title: "Steps — Failed, started <its start>". */
  renderTitle(run, runId, model) {
    const status = run !== null ? text(run.status) : "";
    const outcome = model.running ? "Running" : status ? outcomeLabel(status) : "";
    let title = "Steps";
    if (!this.runId) {
      if (runId !== null) title = model.running ? "Steps of the running snapshot" : "Steps of the last snapshot";
      if (runId !== null && !model.running && outcome) title += " — " + outcome;
    } else {
      const first = validSteps(run)[0];
      const started = first ? parseTime(first.startedAt) : null;
      const parts = [outcome, started !== null ? "started " + localDateTime(started) : ""].filter(Boolean);
      if (parts.length) title += " — " + parts.join(", ");
    }
    setText(this.ui.title, title);
    setAttr(this.ui.title, "title", runId === null ? null : "Run " + runId);
  }

  /** The rows, patched in place: a row whose step and state are unchanged keeps its node (and a reader's
   * place in it); only its texts are set. */
  renderRows(rows) {
    const list = this.ui.list;
    const items = [...list.children];
    rows.forEach((row, index) => {
      let item = items[index];
      if (!item || item.dataset.key !== row.key || item.dataset.state !== row.state) {
        const fresh = this.item(row);
        if (item) item.replaceWith(fresh);
        else list.append(fresh);
        item = fresh;
      }
      setAttr(item, "data-flag", row.flag || null);
      setText(item.querySelector(".step-label"), row.label + ": ");
      for (const field of FIELDS) setText(item.querySelector(".step-" + field), row[field]);
    });
    for (const extra of items.slice(rows.length)) extra.remove();
    // A list taller than its box scrolls: then it takes the keyboard focus, so it can be scrolled without a mouse.
    setAttr(list, "tabindex", list.scrollHeight > list.clientHeight + 1 ? "0" : null);
  }

  item(row) {
    return h("li", { class: "step", part: "step", "data-key": row.key, "data-state": row.state,
      "aria-current": row.state === "current" ? "step" : null },
    h("span", { class: "step-mark", "aria-hidden": "true" }),
    h("span", { class: "step-label visually-hidden" }),
    h("span", { class: "step-name", part: "step-name" }),
    h("span", { class: "step-time", part: "step-time" }),
    h("span", { class: "step-detail", part: "step-detail" }),
    h("span", { class: "step-remark", part: "step-remark" }));
  }
}

define("snapshot-steps", SnapshotSteps);
