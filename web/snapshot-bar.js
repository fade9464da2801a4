/* <snapshot-bar>: the snapshot service's state in one bar, for any page on any origin.
 *
 *   <script type="module" src="https://snap.example.com/snapshot-bar.js"></script>
 *   <snapshot-bar server="https://snap.example.com" job="report" controls="run cancel pause"></snapshot-bar>
 *
 * Attributes: `server` (default: the origin this script came from), `job` (default: the service's default
 * job, read under /api/snapshot; a named job is read under /api/jobs/<job>, and its name is shown), `controls`
 * (which of run, cancel, pause it offers; default "run"), `compact` (one line), `theme` ("light" or "dark";
 * default: the reader's preference). Property `token`: the service's token, set by the
 * host page (kept in memory only), else asked for in the bar when the service wants it.
 * It reflects its state in the attribute `state` (offline, idle, running) and tells the host page, with
 * bubbling, composed events: `snapshot-status` (detail: the status document) on every new document,
 * `snapshot-run-started` and `snapshot-run-finished` (detail: {run}: the run's record), and `snapshot-jobs`
 * (detail: {defaultJob, jobs, several}) when the service's list of jobs is read or changes.
 * Every element of a page, of any job of one server, shares one event stream (lib/stream.js). */

import { installActions } from "./lib/bar-actions.js";
import { barContent, BAR_CSS } from "./lib/bar-template.js";
import { barModel, barWords, detailModel, runChanges } from "./lib/bar-view.js";
import { etaSeconds, remainingMs } from "./lib/clock.js";
import { adoptStyles, define, serverOf, setAttr, setText } from "./lib/dom.js";
import { DEFAULT_JOB } from "./lib/api.js";
import { firstLine } from "./lib/format.js";
import { subscribe } from "./lib/stream.js";
import { THEME_CSS } from "./lib/theme.js";
import { tokens } from "./lib/token.js";

const MESSAGE_MS = 8000;
const IDS = [
  "snapshot-connection", "snapshot-job", "snapshot-status", "snapshot-running", "snapshot-progress", "snapshot-fill",
  "snapshot-percent", "snapshot-what", "snapshot-step", "snapshot-detail", "snapshot-eta", "snapshot-queued", "snapshot-paused", "snapshot-checks",
  "snapshot-last", "snapshot-alert", "run-now-message", "token-form", "token-label", "token-input",
  "cancel-confirm", "cancel-yes", "cancel-no", "pause-form", "pause-reason", "pause-yes", "pause-no",
  "pause-run", "resume-run", "cancel-run", "run-now",
];

export class SnapshotBar extends HTMLElement {
  static observedAttributes = ["server", "job", "controls"];

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    adoptStyles(root, THEME_CSS, BAR_CSS);
    root.append(barContent());
    this.ui = Object.fromEntries(IDS.map((id) => [id, root.getElementById(id)]));
    this.stream = null;
    this.unsubscribe = null;
    this.ticker = null;
    this.timers = new Set();
    this.flags = { triggering: false, awaitingRun: false, sawRunning: false, cancelling: false, confirming: false,
      pausing: false, pauseInFlight: false };
    this.tokenWanted = null; // {retry} while the form shows for a refused change
    this.wire();
    // A host page may set `token` before this module has loaded: that made an own property, which would hide
    // the setter. Take its value through the setter instead.
    if (Object.prototype.hasOwnProperty.call(this, "token")) {
      const given = this.token;
      delete this.token;
      this.token = given;
    }
  }

  get server() { return serverOf(this); }
  /** The job named by the `job` attribute, or null: the service's default job. */
  get job() { return this.getAttribute("job") || null; }
  get words() { return barWords(this.job !== null); }
  get controls() { return new Set((this.getAttribute("controls") ?? "run").split(/[\s,]+/).filter(Boolean)); }
  set token(value) { if (value) tokens.set(this.server, String(value), { persist: false }); }

  connectedCallback() {
    this.follow();
    this.ticker = setInterval(() => this.render(), 1000);
  }

  disconnectedCallback() {
    this.unfollow();
    clearInterval(this.ticker);
    this.ticker = null;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  attributeChangedCallback(name, before, after) {
    if (before === after || !this.isConnected) return;
    if (name === "controls") this.render();
    else this.follow();
  }

  follow() {
    this.unfollow();
    this.unsubscribe = subscribe(this.server, this.job, (kind, stream) => this.onStream(kind, stream));
    this.render();
  }

  unfollow() {
    if (this.unsubscribe) this.unsubscribe();
    this.unsubscribe = null;
    this.stream = null;
    this.seen = null;
    this.jobsKey = null;
  }

  later(ms, fn) {
    const timer = setTimeout(() => { this.timers.delete(timer); fn(); }, ms);
    this.timers.add(timer);
    return timer;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { bubbles: true, composed: true, detail }));
  }

  onStream(kind, stream) {
    this.stream = stream;
    this.noteJobs(stream.jobs);
    if (kind === "status") {
      const doc = stream.doc;
      const changes = runChanges(this.seen ?? null, doc);
      this.seen = doc;
      if (doc.running === true) {
        this.flags.sawRunning = true;
        this.flags.awaitingRun = false;
      }
      this.render();
      this.emit("snapshot-status", doc);
      if (changes.started) this.emit("snapshot-run-started", { run: changes.started });
      if (changes.finished) {
        if (changes.finished.status === "error") {
          const what = this.job === null ? "Snapshot" : "Job " + this.job;
          this.announce(what + " failed" + (changes.finished.error ? ": " + firstLine(changes.finished.error) : ""));
        }
        this.emit("snapshot-run-finished", { run: changes.finished });
      }
      return;
    }
    this.render();
  }

  /** Tell the host page of the service's jobs when they change (a jobs file: GET /api/jobs, and a job that
   * shows up on the stream later): `snapshot-jobs`, detail {defaultJob, jobs (names), several}. */
  noteJobs(jobs) {
    const key = jobs.defaultJob + " " + jobs.jobs.join(" ");
    if (jobs.defaultJob === null || key === this.jobsKey) return;
    this.jobsKey = key;
    this.emit("snapshot-jobs", jobs);
  }

  // ---------------------------------------------------------------------------------------- rendering
  render() {
    const stream = this.stream;
    const doc = stream?.doc ?? null;
    const mono = performance.now();
    const open = stream !== null && stream.state === "open" && doc !== null;
    const model = barModel(doc, {
      state: stream?.state ?? "connecting",
      everFailed: stream?.everFailed ?? false,
      job: this.job ?? DEFAULT_JOB,
      named: this.job !== null,
      now: stream ? stream.clock.now(mono) : null,
      remaining: open ? remainingMs(doc, stream.arrival, stream.clock, mono) : null,
      etaLeft: open ? etaSeconds(doc, stream.arrival, stream.clock, mono) : null,
    });
    const ui = this.ui;
    setAttr(this, "state", model.mode);
    ui["snapshot-connection"].dataset.connected = String(model.connected);
    setAttr(ui["snapshot-connection"], "aria-label", model.connected ? "Connected" : "Not connected");
    setAttr(ui["snapshot-connection"], "title", model.connected ? "Live" : "Not connected to the snapshot service");
    this.renderJob();
    setText(ui["snapshot-status"], model.status);
    setAttr(ui["snapshot-status"], "title", model.statusTitle);
    this.renderProgress(model, model.mode === "running" ? detailModel(doc) : null);
    ui["snapshot-queued"].hidden = !model.queued;
    ui["snapshot-paused"].hidden = !(model.paused && (model.mode === "running" || model.waiting));
    setText(ui["snapshot-paused"], model.pausedChip);
    setAttr(ui["snapshot-paused"], "title", model.pausedChipTitle);
    ui["snapshot-checks"].hidden = !model.checks.line;
    setText(ui["snapshot-checks"], model.checks.line);
    setAttr(ui["snapshot-checks"], "title", model.checks.title || null);
    this.renderLast(model.last);
    this.renderControls(model);
    this.renderTokenForm(stream?.state === "unauthorized");
  }

  /** The job's name, and the names that say whose bar this is, on the bar of a named job. */
  renderJob() {
    const ui = this.ui;
    const job = this.job;
    ui["snapshot-job"].hidden = job === null;
    setText(ui["snapshot-job"], job ?? "");
    setAttr(ui["snapshot-job"].closest(".bar"), "aria-label", job === null ? "Snapshot status" : "Job " + job);
    setAttr(ui["snapshot-progress"], "aria-label", job === null ? "Snapshot progress" : "Progress of " + job);
    setAttr(ui["run-now"], "aria-label", job === null ? null : "Run Now: " + job);
  }

  renderProgress(model, detail) {
    const ui = this.ui;
    const progress = model.progress;
    const line = progress !== null && detail !== null ? detail.text : "";
    ui["snapshot-running"].hidden = progress === null;
    ui["snapshot-step"].hidden = !progress?.step;
    ui["snapshot-detail"].hidden = !line;
    ui["snapshot-what"].hidden = !progress?.step && !line;
    if (progress !== null) {
      const valueText = line ? detail.valueText : progress.valueText;
      setAttr(ui["snapshot-progress"], "aria-valuenow", progress.valueNow);
      setAttr(ui["snapshot-progress"], "aria-valuetext", valueText);
      setAttr(ui["snapshot-running"], "title", valueText);
      ui["snapshot-fill"].style.width = progress.percent + "%";
      setText(ui["snapshot-percent"], progress.percentText);
      setText(ui["snapshot-step"], progress.step);
      setAttr(ui["snapshot-step"], "title", progress.step || null);
      setAttr(ui["snapshot-step"], "tabindex", progress.step ? "0" : null);
      setText(ui["snapshot-detail"], line);
      setAttr(ui["snapshot-detail"], "title", line || null);
      setAttr(ui["snapshot-detail"], "tabindex", line ? "0" : null);
    }
    ui["snapshot-eta"].hidden = model.eta === null;
    setText(ui["snapshot-eta"], model.eta?.text ?? "");
    setAttr(ui["snapshot-eta"], "title", model.eta?.title ?? null);
  }

  renderLast(last) {
    const node = this.ui["snapshot-last"];
    const key = JSON.stringify(last) + " " + this.job;
    if (node.dataset.key === key) return;
    node.dataset.key = key;
    node.dataset.outcome = last.outcome;
    node.textContent = "";
    setAttr(node, "title", last.title);
    if (last.label === null) {
      if (last.empty) node.append(this.words.none);
      return;
    }
    const outcome = document.createElement("span");
    outcome.className = "outcome";
    outcome.setAttribute("part", "outcome");
    outcome.textContent = last.label;
    node.append("Last: ", outcome, ...last.parts.map((part) => " · " + part));
    if (last.error) {
      const error = document.createElement("span");
      error.className = "error";
      error.setAttribute("part", "error");
      error.textContent = " — " + last.error;
      node.append(error);
    }
  }

  renderControls(model) {
    const ui = this.ui;
    const allowed = this.controls;
    const f = this.flags;
    const running = model.mode === "running";
    const run = ui["run-now"];
    run.hidden = !allowed.has("run");
    run.disabled = !model.connected || running || f.triggering || f.awaitingRun;
    setAttr(run, "aria-busy", f.triggering || f.awaitingRun ? "true" : null);
    const stopping = running && model.stopping !== null;
    if (!running || stopping || !allowed.has("cancel")) f.confirming = false;
    ui["cancel-run"].hidden = !allowed.has("cancel") || !running || stopping || f.confirming;
    ui["cancel-run"].disabled = f.cancelling;
    ui["cancel-confirm"].hidden = !f.confirming;
    this.renderPause(model, allowed.has("pause"));
  }

  /** Pause/Resume show only when the service tells its pause state (a service without it shows neither). */
  renderPause(model, allowed) {
    const ui = this.ui;
    const known = allowed && model.pauseKnown;
    const focused = this.shadowRoot.activeElement;
    const hadFocus = focused === ui["pause-run"] || focused === ui["resume-run"] || ui["pause-form"].contains(focused);
    if (!known || model.paused) this.flags.pausing = false;
    ui["pause-form"].hidden = !this.flags.pausing;
    ui["pause-run"].hidden = !known || model.paused || this.flags.pausing;
    ui["resume-run"].hidden = !known || !model.paused;
    setAttr(ui["resume-run"], "aria-busy", this.flags.pauseInFlight ? "true" : null);
    ui["pause-yes"].disabled = this.flags.pauseInFlight;
    // The control in use was just hidden (Pause became Resume, or back): keep the keyboard where it was.
    if (hadFocus && focused.closest("[hidden]")) {
      if (!ui["resume-run"].hidden) ui["resume-run"].focus();
      else if (!ui["pause-run"].hidden) ui["pause-run"].focus();
    }
  }

  renderTokenForm(forReads) {
    const form = this.ui["token-form"];
    const wanted = forReads || this.tokenWanted !== null;
    if (forReads && this.tokenWanted === null) {
      setText(this.ui["token-label"], this.stream.tokenRefused ? "Token not accepted, try again" : "Token needed");
    }
    if (form.hidden === !wanted) return;
    form.hidden = !wanted;
    if (wanted) {
      this.ui["token-input"].value = "";
      this.ui["token-input"].focus();
    }
  }

  showMessage(text, kind = "") {
    const node = this.ui["run-now-message"];
    clearTimeout(this.messageTimer);
    setText(node, text);
    node.dataset.kind = kind;
    if (text) this.messageTimer = this.later(MESSAGE_MS, () => setText(node, ""));
  }

  announce(text) {
    setText(this.ui["snapshot-alert"], text);
    this.later(MESSAGE_MS, () => setText(this.ui["snapshot-alert"], ""));
  }

  wire() {
    const ui = this.ui;
    ui["run-now"].addEventListener("click", () => this.runNow());
    ui["cancel-run"].addEventListener("click", () => this.askCancel());
    ui["cancel-yes"].addEventListener("click", () => this.cancelRun());
    ui["cancel-no"].addEventListener("click", () => this.keepRunning());
    ui["token-form"].addEventListener("submit", (event) => this.onTokenSubmit(event));
    ui["pause-run"].addEventListener("click", () => this.askPause());
    ui["pause-no"].addEventListener("click", () => this.keepSchedule());
    ui["pause-form"].addEventListener("submit", (event) => this.onPauseSubmit(event));
    ui["pause-form"].addEventListener("keydown", (event) => { if (event.key === "Escape") this.keepSchedule(); });
    ui["resume-run"].addEventListener("click", () => this.sendPause("resume", null, "Could not resume"));
    for (const id of ["snapshot-step", "snapshot-detail"]) {
      ui[id].addEventListener("click", () => ui[id].toggleAttribute("data-expanded"));
    }
  }
}

installActions(SnapshotBar);

define("snapshot-bar", SnapshotBar);
