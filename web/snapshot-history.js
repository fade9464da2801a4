/* <snapshot-history server="https://snap.example.com" job="snapshot">: the recent runs, newest first, with the
 * running ones on top: of the job named in `job`; without it, of the service's default job, or, on a service
 * with several jobs, of every job, with a column that names each run's job and a filter by job.
 *
 * It follows the page's shared status stream (lib/stream.js; it opens none of its own) and fetches the runs
 * through lib/api.js (the page's token, and its refusal, are shared with the bar): GET /api/snapshot/runs (or
 * /api/jobs/<job>/runs), or GET /api/runs?job= for several jobs; when the stream says a run started or ended,
 * and when the stream connects: never on a timer. Its relative times move every second by the server's clock.
 * A row's button asks the page to show that run's log: the composed event `snapshot-open-log` (detail {run},
 * whose `job` names the run's job); the page marks the run shown with `selectedRunId`. */

import { Api, answerMessage } from "./lib/api.js";
import { adoptStyles, define, h, serverOf, setAttr, setText } from "./lib/dom.js";
import {
  durationText, firstLine, isObject, localClock, localDateTime, outcomeLabel, parseTime, shortAgo, text, toNumber,
  triggerLabel,
} from "./lib/format.js";
import {
  HISTORY_MAX, HISTORY_PAGE, docsOf, filterChoices, historyKey, isRunningNow, keptFilter, runsPath, shownRuns,
  validRuns,
} from "./lib/history-view.js";
import { ALL_JOBS, subscribe } from "./lib/stream.js";
import { THEME_CSS } from "./lib/theme.js";
import { HISTORY_CSS, PANEL_CSS } from "./lib/panel-style.js";

function freshState() {
  return {
    rows: [], // run records, newest first
    nextCursor: null,
    key: null, // what the shown rows reflect (see historyKey)
    loading: false,
    again: false, // a refresh was asked for while one was loading
    loadingMore: false,
    loaded: false, // a page has been fetched (until then the panel does not say "no runs")
    problem: null, // why the panel may be out of date; shown until a fetch succeeds again
    limit: HISTORY_PAGE, // how many rows the reader asked to see ("Show more" adds a page)
    available: true, // false: this service keeps no run history (404)
  };
}

export class SnapshotHistory extends HTMLElement {
  static get observedAttributes() {
    return ["server", "job"];
  }

  constructor() {
    super();
    this.history = freshState();
    this.stream = null; // the shared stream's feed, once it has called us
    this.unsubscribe = null;
    this.ticker = null;
    this.selected = null;
    this.target = null; // "server job" this element shows
    this.named = false; // the `job` attribute names the one job shown
    this.several = false; // the runs of several jobs: a job column and a filter
    this.filter = ""; // the job chosen in the filter ("": every job)
    this.jobNames = [];
    const root = this.attachShadow({ mode: "open" });
    adoptStyles(root, THEME_CSS, PANEL_CSS, HISTORY_CSS);
    this.ui = {
      note: h("span", { class: "panel-note", id: "history-note", "data-testid": "history-note",
        "aria-live": "polite" }),
      rows: h("tbody", { id: "history-rows", "data-testid": "history-rows" }),
      more: h("button", { type: "button", class: "panel-button", id: "history-more", "data-testid": "history-more",
        hidden: true, text: "Show more" }),
    };
    this.ui.jobHead = h("th", { scope: "col", class: "history-job", text: "Job", hidden: true });
    const head = h("tr", {}, h("th", { scope: "col", text: "Outcome" }), this.ui.jobHead,
      ...["Started", "Duration", "Trigger", "Reason / error"].map((label) => h("th", { scope: "col", text: label })));
    this.ui.table = h("table", { class: "history-table", id: "history-table", "data-testid": "history-table",
      hidden: true }, h("thead", {}, head), this.ui.rows);
    this.ui.title = h("h2", { id: "history-title", text: "Recent snapshots" });
    this.ui.filter = h("select", { id: "history-job", "data-testid": "history-job", class: "panel-select" });
    this.ui.filterBox = h("label", { class: "history-filter", id: "history-filter", hidden: true },
      h("span", { text: "Job" }), this.ui.filter);
    root.append(h("section", { class: "panel", id: "history", "data-testid": "history", part: "panel",
      "aria-labelledby": "history-title" },
    h("div", { class: "panel-head" }, this.ui.title, this.ui.note, this.ui.filterBox),
    h("div", { class: "history-scroll" }, this.ui.table),
    this.ui.more));
    this.ui.rows.addEventListener("click", (event) => this.onClick(event));
    this.ui.more.addEventListener("click", () => this.loadMore());
    this.ui.filter.addEventListener("change", () => this.choose(this.ui.filter.value));
  }

  /** The run whose log the page shows (its row gets aria-current="true"), or null. */
  get selectedRunId() {
    return this.selected;
  }

  set selectedRunId(runId) {
    this.selected = typeof runId === "string" ? runId : null;
    for (const row of this.ui.rows.rows) {
      setAttr(row, "aria-current", row.dataset.runId === this.selected ? "true" : null);
    }
  }

  /** Put the keyboard focus on `runId`'s row (after its log was closed, say); false if it is not shown. */
  focusRun(runId) {
    const row = [...this.ui.rows.rows].find((r) => r.dataset.runId === runId);
    if (!row) return false;
    row.querySelector("button").focus();
    return true;
  }

  connectedCallback() {
    const server = serverOf(this);
    const job = this.getAttribute("job") || null;
    if (this.target !== server + " " + job) {
      this.target = server + " " + job;
      this.api = new Api(server, job);
      this.named = job !== null;
      this.several = false;
      this.filter = "";
      this.jobNames = [];
      this.history = freshState();
      this.stream = null;
      this.renderJobs();
      this.render();
    }
    this.unsubscribe = subscribe(server, job ?? ALL_JOBS, (kind, stream) => this.onStream(kind, stream));
    // "5 min ago" and a running run's duration move with time alone; nothing is fetched for this.
    this.ticker = setInterval(() => this.tick(), 1000);
  }

  disconnectedCallback() {
    if (this.unsubscribe) this.unsubscribe();
    this.unsubscribe = null;
    clearInterval(this.ticker);
    this.ticker = null;
  }

  attributeChangedCallback(name, before, after) {
    if (before === after || !this.isConnected) return;
    this.disconnectedCallback();
    this.connectedCallback();
  }

  onStream(kind, stream) {
    this.stream = stream;
    if (!this.named) this.noteJobs(stream.jobs);
    if (kind === "state" || kind === "jobs") {
      this.render(); // the running run shows only while the stream is live; the note may ask for the token
      return;
    }
    const key = historyKey(stream.generation, this.docs());
    if (key !== this.history.key) {
      this.history.key = key;
      if (this.history.loaded) this.render(); // the stream's news at once, the rest when the fetch answers
      this.load();
    } else {
      this.renderNote();
      this.tick();
    }
  }

  /** The service's jobs, as the stream says them: several make a job column and a filter, and read the runs of
   * every job (the page reads them again from there). */
  noteJobs(jobs) {
    const several = jobs.several;
    const names = several ? jobs.jobs : [];
    if (several === this.several && names.join(" ") === this.jobNames.join(" ")) return;
    const filter = keptFilter(this.filter, names);
    const reread = several !== this.several || filter !== this.filter;
    this.several = several;
    this.jobNames = names;
    this.filter = filter;
    this.renderJobs();
    if (reread) this.reset();
  }

  /** Show the runs of `job` ("": every job). */
  choose(job) {
    if (job === this.filter) return;
    this.filter = job;
    this.reset();
  }

  /** Forget the rows read and read them again from where they now come. */
  reset() {
    this.history = freshState();
    this.render();
    if (this.stream === null || this.stream.doc === null) return; // read once the stream says something
    this.history.key = historyKey(this.stream.generation, this.docs());
    this.load();
  }

  docs() {
    return docsOf(this.stream, { named: this.named, several: this.several, filter: this.filter });
  }

  renderJobs() {
    const ui = this.ui;
    ui.jobHead.hidden = !this.several;
    ui.filterBox.hidden = !this.several;
    setText(ui.title, this.several ? "Recent runs" : "Recent snapshots");
    const choices = filterChoices(this.jobNames);
    ui.filter.replaceChildren(...choices.map((c) => h("option", { value: c.value, text: c.label })));
    ui.filter.value = this.filter;
  }

  async load() {
    const history = this.history;
    if (history.loading) {
      history.again = true;
      return;
    }
    history.loading = true;
    history.again = false;
    const page = await this.fetchRuns("?limit=" + Math.min(HISTORY_MAX, history.limit), false);
    if (page && page !== "gone") {
      history.loaded = true;
      history.rows = page.runs;
      history.nextCursor = page.nextCursor;
      this.render();
    }
    history.loading = false;
    if (history.again && history === this.history) this.load();
  }

  async loadMore() {
    const history = this.history;
    if (history.loadingMore || !history.nextCursor) return;
    history.loadingMore = true;
    this.ui.more.disabled = true;
    const query = "?limit=" + HISTORY_PAGE + "&cursor=" + encodeURIComponent(history.nextCursor);
    const page = await this.fetchRuns(query, true);
    if (page === "gone") {
      // The run the cursor named was pruned meanwhile: fetch the whole list again, one page longer.
      history.limit = Math.min(HISTORY_MAX, history.rows.length + HISTORY_PAGE);
      this.load();
    } else if (page) {
      const seen = new Set(history.rows.map((run) => run.runId));
      history.rows = history.rows.concat(page.runs.filter((run) => !seen.has(run.runId)));
      history.nextCursor = page.nextCursor;
      history.limit = history.rows.length;
      this.render();
    }
    history.loadingMore = false;
    this.ui.more.disabled = false;
  }

  /** One page of runs, or null (the note says why); with `cursorGone`, a 404 gives "gone" instead. */
  async fetchRuns(query, cursorGone) {
    const history = this.history;
    const problem = (message) => {
      if (history !== this.history) return null;
      history.problem = message;
      this.render();
      return null;
    };
    try {
      const response = await this.api.read(runsPath(this.several, this.filter, query));
      if (response.ok) {
        const body = await response.json();
        if (!isObject(body) || !Array.isArray(body.runs)) return problem("History unavailable: not a page of runs");
        history.available = true;
        history.problem = null;
        return { runs: validRuns(body.runs), nextCursor: typeof body.nextCursor === "string" ? body.nextCursor : null };
      }
      if (response.status === 404 && cursorGone) return "gone";
      const message = await answerMessage(response);
      if (response.status === 404) {
        history.available = false;
        return problem("This service keeps no run history");
      }
      if (response.status === 401) return problem("The run history needs the service's token");
      return problem("History unavailable: " + message);
    } catch (e) {
      return problem("History unavailable — the service cannot be reached");
    }
  }

  live() {
    return this.stream !== null && this.stream.state === "open" && this.stream.doc !== null;
  }

  /** The fetched rows, with the running runs from the stream on top: the status event that says a run started
   * can arrive before the history has it, and the stream's record of it is the freshest anyway. */
  shownRuns() {
    return shownRuns(this.history.rows, this.docs(), { live: this.live(), available: this.history.available });
  }

  render() {
    const rows = this.shownRuns();
    const body = this.ui.rows;
    // The rows are rebuilt: a keyboard user on one of them stays on it (the same run's new row).
    const active = this.shadowRoot.activeElement;
    const focusedRun = active && body.contains(active) ? active.closest("tr").dataset.runId : null;
    body.replaceChildren(...rows.map((run) => this.row(run)));
    if (focusedRun !== null) {
      const again = [...body.rows].find((r) => r.dataset.runId === focusedRun);
      if (again) again.querySelector("button").focus({ preventScroll: true });
    }
    this.ui.table.hidden = rows.length === 0;
    this.ui.more.hidden = !this.history.nextCursor;
    this.renderNote();
    this.tick();
  }

  /** Why the panel shows what it shows: a problem, no runs yet, or (before anything could be read) the token. */
  renderNote() {
    const history = this.history;
    let note = history.problem;
    if (!note && !history.loaded && this.stream && this.stream.state === "unauthorized") {
      note = "Enter the token above to see the history";
    }
    if (!note && history.loaded && this.shownRuns().length === 0) {
      note = this.several ? "No run yet" + (this.filter ? " of " + this.filter : "") : "No snapshot has run yet";
    }
    setText(this.ui.note, note || "");
  }

  outcomeOf(run) {
    if (run.status === "running") return isRunningNow(run, this.docs()) ? "Running" : "Interrupted";
    return outcomeLabel(run.status);
  }

  row(run) {
    const status = text(run.status);
    const outcome = this.outcomeOf(run);
    const job = this.several ? text(run.job) : "";
    const open = h("button", { type: "button", class: "history-open outcome", "data-outcome": status, text: outcome,
      "aria-label": outcome + ": show the log of " + (job ? job + " " : "") + "run " + run.runId,
      title: "Show this run's log (" + run.runId + ")" });
    const started = parseTime(run.startedAt);
    const when = h("td", { class: "history-when" });
    if (started !== null) {
      when.append(h("time", { class: "history-ago", datetime: run.startedAt, title: localDateTime(started),
        "data-at": String(started) }));
    }
    const seconds = toNumber(run.durationSeconds);
    const duration = h("td", { class: "history-duration" });
    if (seconds !== null) duration.textContent = durationText(seconds);
    else if (status === "running" && started !== null) duration.dataset.since = String(started); // ticks
    return h("tr", { "data-run-id": run.runId, "data-outcome": status, "data-job": job || null,
      "aria-current": this.selected === run.runId ? "true" : null },
    h("td", {}, open), ...(this.several ? [h("td", { class: "history-job", text: job })] : []), when, duration,
    this.triggerCell(run), this.whyCell(run));
  }

  triggerCell(run) {
    const listed = Array.isArray(run.triggers) ? run.triggers.filter(isObject) : [];
    const count = Math.max(toNumber(run.triggerCount) || 0, Array.isArray(run.triggers) ? run.triggers.length : 0);
    const cell = h("td", { class: "history-trigger",
      text: triggerLabel(run.trigger) + (count > 1 ? " + " + (count - 1) + " more" : "") });
    if (Array.isArray(run.triggers) && run.triggers.length) {
      cell.title = listed.map((t) => {
        const at = parseTime(t.at);
        const reason = text(t.reason) ? ": " + t.reason : "";
        return triggerLabel(t.source) + (at !== null ? " at " + localClock(at) : "") + reason;
      }).join("\n") + (count > run.triggers.length ? "\n… and " + (count - run.triggers.length) + " more" : "");
    }
    return cell;
  }

  whyCell(run) {
    const cell = h("td", { class: "history-why" });
    if (text(run.reason)) cell.append(h("span", { class: "history-reason", text: run.reason }));
    if (text(run.error)) {
      cell.append(h("span", { class: "history-error", text: firstLine(run.error) }));
      cell.title = run.error;
    } else if (run.status === "running" && text(run.step)) {
      cell.append(h("span", { class: "history-step", text: run.step }));
    }
    return cell;
  }

  /** Move the relative times along by the server's clock (nothing is fetched). */
  tick() {
    const now = this.stream ? this.stream.clock.now(performance.now()) : null;
    for (const node of this.ui.rows.querySelectorAll("time[data-at]")) {
      const at = Number(node.dataset.at);
      setText(node, shortAgo(at, now) || localClock(at));
    }
    for (const node of this.ui.rows.querySelectorAll("td[data-since]")) {
      setText(node, now === null ? "running" : "running " + durationText((now - Number(node.dataset.since)) / 1000));
    }
  }

  onClick(event) {
    const row = event.target.closest("tr[data-run-id]");
    if (!row) return;
    const run = this.shownRuns().find((r) => r.runId === row.dataset.runId);
    if (!run) return;
    this.dispatchEvent(new CustomEvent("snapshot-open-log", { bubbles: true, composed: true, detail: { run } }));
  }
}

define("snapshot-history", SnapshotHistory);
