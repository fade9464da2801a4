/* <snapshot-log server="https://snap.example.com" job="snapshot">: one run's log, shown when the page calls
 * `open(run)` (a run record, as <snapshot-history>'s `snapshot-open-log` event carries it).
 *
 * The log's last LOG_TAIL_BYTES come by a Range request; while the run runs, its new lines follow over the
 * run's log stream (GET runs/<id>/log/stream?offset=N, with a stream ticket when the page holds a token),
 * resumed from the byte offset reached after a break (with backoff), until its `end` event. When the stream
 * breaks and the run has ended meanwhile, the rest is read once by offset. The page keeps the last
 * LOG_MAX_LINES lines (the full log is a link away) and stays at the bottom unless the reader scrolled up.
 * Job output only ever goes in as text, never as markup. Events (bubbling, composed): `snapshot-log-opened`
 * (detail {run}) and `snapshot-log-closed` (detail {runId}). */

import { Api, answerMessage } from "./lib/api.js";
import { Backoff } from "./lib/backoff.js";
import { adoptStyles, define, h, serverOf, setAttr, setText } from "./lib/dom.js";
import { durationText, isObject, localDateTime, outcomeLabel, parseTime, toNumber } from "./lib/format.js";
import {
  LOG_MAX_LINES, LOG_TAIL_BYTES, byteLength, dropPartialLine, excessLines, lineStream, rangeStart, splitLines,
  unseenPart,
} from "./lib/logbuffer.js";
import { LOG_CSS, PANEL_CSS } from "./lib/panel-style.js";
import { THEME_CSS } from "./lib/theme.js";
import { tokens } from "./lib/token.js";

export class SnapshotLog extends HTMLElement {
  static get observedAttributes() {
    return ["server", "job"];
  }

  constructor() {
    super();
    this.view = null; // the open log, see open()
    this.stopTokens = null;
    const root = this.attachShadow({ mode: "open" });
    adoptStyles(root, THEME_CSS, PANEL_CSS, LOG_CSS);
    const ui = {
      title: h("h2", { id: "log-title", "data-testid": "log-title", text: "Log" }),
      state: h("span", { class: "panel-note", id: "log-state", "data-testid": "log-state", "aria-live": "polite" }),
      full: h("a", { class: "panel-link", id: "log-full", "data-testid": "log-full", href: "#", target: "_blank",
        rel: "noopener", part: "full-log", text: "Full log" }),
      close: h("button", { type: "button", class: "panel-button", id: "log-close", "data-testid": "log-close",
        part: "close", text: "Close" }),
      trimmed: h("p", { class: "log-trimmed", id: "log-trimmed", "data-testid": "log-trimmed", hidden: true }),
      lines: h("div", { class: "log-lines", id: "log-lines", "data-testid": "log-lines", role: "log",
        "aria-label": "Job output", tabindex: "0", part: "lines" }),
    };
    ui.panel = h("section", { class: "panel", id: "log-view", "data-testid": "log-view", part: "panel",
      "aria-labelledby": "log-title", hidden: true },
    h("div", { class: "panel-head" }, ui.title, ui.state, h("span", { class: "panel-actions" }, ui.full, ui.close)),
    ui.trimmed, ui.lines);
    root.append(ui.panel);
    ui.close.addEventListener("click", () => this.close());
    this.ui = ui;
  }

  /** The run record shown (refreshed when the run ends), or null when closed. */
  get run() {
    return this.view ? this.view.record : null;
  }

  connectedCallback() {
    this.api = new Api(serverOf(this), this.getAttribute("job") || null);
    this.stopTokens = tokens.subscribe(this.api.server, () => this.onToken());
    // Back on the page with a live log open: carry on from the offset reached.
    if (this.view && !this.view.ended && this.view.source === null) this.recheck(this.view);
  }

  disconnectedCallback() {
    this.stopFollowing();
    if (this.stopTokens) this.stopTokens();
    this.stopTokens = null;
  }

  attributeChangedCallback(name, before, after) {
    if (before === after || !this.isConnected) return;
    this.close(); // another service's or job's runs: the open log is not one of them
    this.disconnectedCallback();
    this.connectedCallback();
  }

  /** Show `run`'s log: its tail at once; if it is running, then its new lines as they come. */
  open(run) {
    if (!isObject(run) || typeof run.runId !== "string") throw new TypeError("open() needs a run record with a runId");
    this.stopFollowing();
    const view = {
      runId: run.runId,
      record: run,
      offset: 0, // bytes of the log file shown (or skipped) so far
      lines: 0,
      source: null,
      ended: run.status !== "running",
      timer: null,
      backoff: new Backoff(),
      waitingForToken: false,
    };
    this.view = view;
    const { ui } = this;
    ui.lines.replaceChildren();
    ui.trimmed.hidden = true;
    ui.full.href = this.pageUrl(this.logPath(run.runId));
    this.setTitle(run);
    setText(ui.state, "Loading…");
    ui.panel.hidden = false;
    setAttr(this, "open", "");
    ui.panel.scrollIntoView({ block: "nearest" });
    ui.lines.focus({ preventScroll: true });
    this.dispatchEvent(new CustomEvent("snapshot-log-opened", { bubbles: true, composed: true, detail: { run } }));
    this.loadTail(view);
  }

  /** Hide the log and stop following it. */
  close() {
    const view = this.view;
    if (view === null) return;
    this.stopFollowing();
    this.view = null;
    this.ui.panel.hidden = true;
    this.ui.lines.replaceChildren();
    setAttr(this, "open", null);
    const detail = { runId: view.runId };
    this.dispatchEvent(new CustomEvent("snapshot-log-closed", { bubbles: true, composed: true, detail }));
  }

  logPath(runId) {
    return "runs/" + encodeURIComponent(runId) + "/log";
  }

  /** A link to `path` under the job's API: a path alone on the service's own page, the whole URL elsewhere. */
  pageUrl(path) {
    const url = new URL(this.api.url(path));
    return url.origin === location.origin ? url.pathname + url.search : url.href;
  }

  async loadTail(view) {
    try {
      const response = await this.api.read(this.logPath(view.runId), { Range: "bytes=-" + LOG_TAIL_BYTES });
      if (this.view !== view) return;
      if (response.status === 416) {
        this.afterTail(view); // an empty log
        return;
      }
      if (!response.ok) {
        const message = await answerMessage(response);
        if (this.view !== view) return;
        if (response.status === 404 && !view.ended) {
          this.follow(view); // a run that just started may have no log file yet: its stream starts at 0
          return;
        }
        view.ended = true;
        setText(this.ui.state, response.status === 404 ? message : "Log unavailable: " + message);
        return;
      }
      const start = rangeStart(response.status, response.headers.get("Content-Range"));
      const tail = dropPartialLine(await response.text(), start);
      if (this.view !== view) return;
      if (tail.start > 0) this.showTrimmed();
      view.offset = tail.start;
      this.append(view, tail.body, tail.start);
      this.afterTail(view);
    } catch (e) {
      if (this.view === view) setText(this.ui.state, "Log unavailable — the service cannot be reached");
    }
  }

  afterTail(view) {
    if (view.ended) this.setState(view);
    else if (this.isConnected) this.follow(view);
  }

  setTitle(run) {
    const view = this.view;
    const live = run.status === "running" && view !== null && !view.ended;
    const outcome = live ? "Running" : outcomeLabel(run.status); // a "running" record of an ended view: interrupted
    const started = parseTime(run.startedAt);
    setText(this.ui.title, "Log — " + outcome + (started !== null ? ", started " + localDateTime(started) : ""));
    setAttr(this.ui.title, "title", "Run " + run.runId);
  }

  setState(view) {
    if (!view.ended) {
      setText(this.ui.state, "Following live…");
      return;
    }
    const took = toNumber(view.record.durationSeconds);
    setText(this.ui.state, outcomeLabel(view.record.status) + (took !== null ? " after " + durationText(took) : "")
      + (view.lines === 0 ? " — the job printed nothing" : ""));
  }

  /** Follow the running run's log from `view.offset` over its stream; `end` closes it for good. */
  async follow(view) {
    if (this.view !== view || view.ended || !this.isConnected) return;
    this.stopFollowing();
    let url;
    try {
      url = await this.api.streamUrl(this.logPath(view.runId) + "/stream?offset=" + view.offset);
    } catch (e) {
      if (this.view === view) this.retry(view);
      return;
    }
    if (this.view !== view || view.source !== null || !this.isConnected) return;
    if (url === null) {
      view.waitingForToken = true; // the token was refused: the bar asks for another; onToken carries on
      setText(this.ui.state, "The log needs the service's token");
      return;
    }
    const es = new EventSource(url);
    view.source = es;
    this.setState(view);
    es.addEventListener("open", () => {
      if (view.source === es) view.backoff.reset();
    });
    es.addEventListener("log", (event) => {
      if (view.source !== es) return;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (!isObject(data) || typeof data.text !== "string") return;
      const at = toNumber(data.offset);
      this.append(view, data.text, at === null ? view.offset : at);
    });
    es.addEventListener("end", (event) => {
      if (view.source !== es) return;
      this.stopFollowing();
      view.ended = true;
      try {
        const record = JSON.parse(event.data);
        if (isObject(record) && record.runId === view.runId) view.record = record;
      } catch (e) {
        // the record is a nicety; the log is complete either way
      }
      this.setTitle(view.record);
      this.setState(view);
    });
    es.addEventListener("error", () => {
      if (view.source !== es) return;
      // Closed by the server or refused: reopened by us from the offset reached (the browser's own reconnect
      // would start again from the offset in the URL, repeat lines, and reuse a single-use ticket).
      this.stopFollowing();
      this.retry(view);
    });
  }

  retry(view) {
    setText(this.ui.state, "Reconnecting…");
    clearTimeout(view.timer);
    view.timer = setTimeout(() => this.recheck(view), view.backoff.next());
  }

  /** After a broken log stream: is the run still there, and still running? */
  async recheck(view) {
    view.timer = null;
    if (this.view !== view || !this.isConnected) return;
    try {
      const response = await this.api.read("runs/" + encodeURIComponent(view.runId));
      if (this.view !== view) return;
      if (response.status === 404) {
        view.ended = true;
        setText(this.ui.state, "This run is no longer in the history");
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      const record = await response.json();
      if (this.view !== view) return;
      if (isObject(record) && record.status !== "running") {
        view.record = record;
        this.finish(view); // ended meanwhile: the rest of the log by one plain read
      } else {
        this.follow(view);
      }
    } catch (e) {
      if (this.view === view) this.retry(view);
    }
  }

  /** The run ended while its stream was broken: read what is left of its log from our offset, and stop. */
  async finish(view) {
    try {
      const response = await this.api.read(this.logPath(view.runId) + "?offset=" + view.offset);
      if (this.view !== view) return;
      if (response.ok || response.status === 416) {
        const rest = response.ok ? await response.text() : ""; // 416: nothing more was written
        if (this.view !== view) return;
        view.ended = true;
        this.append(view, rest, view.offset);
        this.setTitle(view.record);
        this.setState(view);
        return;
      }
      view.ended = true;
      const message = await answerMessage(response);
      if (this.view === view) setText(this.ui.state, "Log unavailable: " + message);
    } catch (e) {
      if (this.view === view) this.retry(view);
    }
  }

  /** A token was given: a log that waited for one carries on. */
  onToken() {
    const view = this.view;
    if (!view || !view.waitingForToken || !this.api.token()) return;
    view.waitingForToken = false;
    this.follow(view);
  }

  /** Append `chunk` (whole lines) that starts at byte `at` of the log; what was shown already is skipped. */
  append(view, chunk, at) {
    const fresh = unseenPart(chunk, at, view.offset);
    if (fresh === "") return;
    view.offset = Math.max(at, view.offset) + byteLength(fresh);
    const box = this.ui.lines;
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
    const lines = splitLines(fresh);
    view.lines += lines.length;
    const fragment = document.createDocumentFragment();
    // Only the lines that can stay are built: a tail of 100,000 short lines would otherwise all be made.
    for (const line of lines.slice(-LOG_MAX_LINES)) {
      fragment.append(h("div", { class: "log-line", "data-stream": lineStream(line), text: line }));
    }
    if (lines.length > LOG_MAX_LINES) this.showTrimmed();
    box.append(fragment);
    let extra = excessLines(box.childElementCount, LOG_MAX_LINES);
    if (extra > 0) {
      while (extra-- > 0) box.firstElementChild.remove();
      this.showTrimmed();
    }
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  showTrimmed() {
    const { trimmed, full } = this.ui;
    if (!trimmed.hidden) return;
    const link = h("a", { href: full.getAttribute("href"), target: "_blank", rel: "noopener", text: "full log" });
    trimmed.replaceChildren("Earlier lines are not shown here; they are in the ", link, ".");
    trimmed.hidden = false;
  }

  /** Close the log stream and its retry timer (the view stays, to carry on from its offset). */
  stopFollowing() {
    const view = this.view;
    if (!view) return;
    if (view.source) view.source.close();
    view.source = null;
    clearTimeout(view.timer);
    view.timer = null;
  }
}

define("snapshot-log", SnapshotLog);
