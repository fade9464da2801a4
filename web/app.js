/* The snapshot status bar: driven by the server-sent `status` events of /api/snapshot/events.
 *
 * Clock handling: the browser's wall clock is never compared with the server's times. Every status document
 * carries `serverTime`; `serverTime - performance.now()` at the moment it arrives is an estimate of the offset
 * between the server's clock and the page's monotonic clock (an underestimate by the network delay, and by how
 * long the document waited before it was sent). The largest such estimate per connection wins, so the server's
 * "now" is `performance.now() + offset`, and the countdown is `nextRunAt - that`. Date.now() is not used.
 * The server refreshes the clock fields of every event it sends, including the first one on connect.
 *
 * The token: a service started with --token answers 401 to Run Now and Cancel without it (and, with
 * --token-for-reads, to the event stream too). The page then asks for it once, in a small form in the bar,
 * keeps it in localStorage, sends it as "Authorization: Bearer" on changes, and asks again only when the
 * service refuses it. EventSource cannot send headers, so when reads need the token the page asks for the
 * status once with the bearer header, and the service answers with a read cookie of its own (HttpOnly,
 * never the token, good for reads only, for 12 hours and until the service restarts) that the stream then
 * carries; when the stream is refused (the cookie expired, or the service restarted) the page asks again the
 * same way (probeReads). The page never writes the token into a cookie: cookies ignore ports, so every other
 * server on this host would receive it.
 *
 * The history panel (GET /api/snapshot/runs) is fetched when the page connects and whenever a status event
 * says a run started or ended (`currentRun` / `lastRun` changed): never on a timer. A run's log is fetched as
 * its last LOG_TAIL_BYTES (a Range request) and, while the run runs, followed over its log stream (SSE), resumed
 * by byte offset after a break. Job output only ever goes into the page as text (textContent), never as HTML.
 */
(function () {
  "use strict";

  var EVENTS_URL = "/api/snapshot/events";
  var TRIGGER_URL = "/api/snapshot/trigger";
  var CANCEL_URL = "/api/snapshot/cancel";
  var PAUSE_URL = "/api/snapshot/pause";
  var RESUME_URL = "/api/snapshot/resume";
  var STATUS_URL = "/api/snapshot/status";
  var RUNS_URL = "/api/snapshot/runs";
  var HISTORY_PAGE = 20;
  var HISTORY_MAX = 500; // the API's largest page
  var LOG_MAX_LINES = 5000; // lines kept in the page; the full log is a link away
  var LOG_TAIL_BYTES = 256 * 1024; // how much of a log is fetched when it is opened
  var TOKEN_KEY = "snapshot-token";
  var RECONNECT_MIN_MS = 2000;
  var RECONNECT_MAX_MS = 30000;
  var TRIGGER_SETTLE_MS = 5000;
  var MESSAGE_MS = 8000;

  var TRIGGERS = {
    startup: "start-up",
    timer: "scheduled",
    http: "manual",
    file: "trigger file",
  };
  var OUTCOMES = {
    completed: "Completed",
    error: "Failed",
    cancelled: "Cancelled",
    running: "Interrupted",
  };
  var CHECK_KINDS = { late: "Late", long: "Long run", fast: "Suspiciously fast" };

  var ui = {};
  var doc = null; // the latest status document from the stream
  var docArrival = 0; // performance.now() when it arrived
  var offset = null; // estimate of (server epoch ms - performance.now())
  var offsetGeneration = -1;
  var generation = 0; // bumped on every (re)connect
  var connected = false;
  var everFailed = false; // until the first failure, "offline" reads "Connecting…"
  var source = null;
  var reconnectTimer = null;
  var reconnectDelay = RECONNECT_MIN_MS;
  var triggerInFlight = false;
  var awaitingRun = false;
  var awaitingTimer = null;
  var sawRunningSinceClick = false;
  var messageTimer = null;
  var cancelInFlight = false;
  var confirmingCancel = false;
  var tokenWanted = null; // while the token form shows: {retry: function, forReads: boolean}
  var memoryToken = null; // the token when localStorage is unavailable
  var cookieRenewed = false; // a bearer read renewed the read cookie since the stream last opened
  var pauseInFlight = false;
  var pausing = false; // the pause form shows
  var history = {
    rows: [], // run records, newest first
    nextCursor: null,
    key: null, // what the shown rows reflect (see historyKey)
    loading: false,
    again: false, // a refresh was asked for while one was loading
    loadingMore: false,
    loaded: false, // a page has been fetched (until then the panel does not say "no runs")
    problem: null, // why the panel may be out of date, see historyProblem
    limit: HISTORY_PAGE, // how many rows the reader asked to see ("Show more" adds a page)
    available: true, // false: this service has no history API (404)
  };
  var logv = null; // the open log view, see openLog

  // ---------------------------------------------------------------------------------------------- helpers
  function parseTime(value) {
    if (typeof value !== "string" || value === "") return null;
    var ms = Date.parse(value);
    return isFinite(ms) ? ms : null;
  }

  function toNumber(value) {
    return typeof value === "number" && isFinite(value) ? value : null;
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function setAttr(node, name, value) {
    if (value === null) {
      if (node.hasAttribute(name)) node.removeAttribute(name);
    } else if (node.getAttribute(name) !== value) {
      node.setAttribute(name, value);
    }
  }

  function firstLine(text) {
    var line = String(text).split(/\r?\n/).find(function (l) { return l.trim() !== ""; }) || "";
    line = line.trim();
    return line.length > 160 ? line.slice(0, 157) + "…" : line;
  }

  function localClock(ms) {
    try {
      return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    } catch (e) {
      return "";
    }
  }

  function text(value) {
    return typeof value === "string" ? value : "";
  }

  function isObject(value) {
    return !!value && typeof value === "object" && !Array.isArray(value);
  }

  function localDateTime(ms) {
    try {
      return new Date(ms).toLocaleString();
    } catch (e) {
      return "";
    }
  }

  /** "12 s", "3 min 20 s", "1 h 5 min". */
  function durationText(seconds) {
    if (seconds === null || seconds < 0) return "";
    if (seconds < 0.1) return "< 0.1 s";
    if (seconds < 10) return (Math.round(seconds * 10) / 10) + " s";
    if (seconds < 60) return Math.round(seconds) + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) {
      var rest = Math.round(seconds - minutes * 60);
      return minutes + " min" + (rest && minutes < 10 ? " " + rest + " s" : "");
    }
    var hours = Math.floor(minutes / 60);
    return hours + " h" + (minutes % 60 ? " " + (minutes % 60) + " min" : "");
  }

  /** A fresh Idempotency-Key. crypto.randomUUID exists only on secure origins (https, localhost): a page
   * served over plain http from another host builds a version-4 UUID from crypto.getRandomValues instead. */
  function newKey() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === "function") return c.randomUUID();
    var bytes = new Uint8Array(16);
    if (c && typeof c.getRandomValues === "function") {
      c.getRandomValues(bytes);
    } else {
      for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  // ----------------------------------------------------------------------------------------- server clock
  function noteServerTime(serverTime, arrival, gen) {
    if (gen !== generation) return; // a late answer from an earlier connection
    var at = parseTime(serverTime);
    if (at === null) return;
    var candidate = at - arrival;
    // The first estimate of a connection replaces the last one (the server may have restarted with another
    // clock); later ones only raise it, since each is a lower bound on the true offset.
    if (offsetGeneration !== gen || offset === null || candidate > offset) {
      offset = candidate;
      offsetGeneration = gen;
    }
  }

  function serverNow() {
    return offset === null ? null : performance.now() + offset;
  }

  /** Milliseconds until the next automatic run, by the server's clock; null if the document cannot tell. */
  function remainingMs() {
    var now = serverNow();
    var due = parseTime(doc.nextRunAt);
    if (due === null) {
      var at = parseTime(doc.serverTime);
      var secs = toNumber(doc.secondsUntilNextRun);
      if (at !== null && secs !== null) due = at + secs * 1000;
    }
    if (due !== null && now !== null) return due - now;
    var seconds = toNumber(doc.secondsUntilNextRun);
    if (seconds !== null) return seconds * 1000 - (performance.now() - docArrival);
    return null;
  }

  function countdownText(ms) {
    if (ms === null) return "Waiting for the next snapshot";
    if (ms <= 0) return "Next snapshot starting…";
    var seconds = ms / 1000;
    if (seconds < 60) return "Next snapshot in less than a minute";
    return "Next snapshot in " + plural(Math.floor(seconds / 60), "minute");
  }

  function agoText(ms) {
    var now = serverNow();
    if (now === null) return "";
    var seconds = (now - ms) / 1000;
    if (seconds < 60) return "just now";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return plural(minutes, "minute") + " ago";
    var hours = Math.floor(minutes / 60);
    if (hours < 48) return plural(hours, "hour") + " ago";
    return plural(Math.floor(hours / 24), "day") + " ago";
  }

  /** "5 min ago" by the server's clock (the history's short form of agoText). */
  function shortAgo(ms) {
    var now = serverNow();
    if (now === null) return "";
    var seconds = (now - ms) / 1000;
    if (seconds < 60) return "just now";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min ago";
    var hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + " h ago";
    return plural(Math.floor(hours / 24), "day") + " ago";
  }

  /** Seconds left for the running run by the status document's `eta`, moved on locally since it arrived. */
  function etaSeconds() {
    var eta = isObject(doc.eta) ? doc.eta : null;
    if (eta === null) return null;
    var finish = parseTime(eta.finishAt);
    var now = serverNow();
    if (finish !== null && now !== null) return (finish - now) / 1000;
    var left = toNumber(eta.secondsLeft);
    return left === null ? null : left - (performance.now() - docArrival) / 1000;
  }

  function etaText(seconds) {
    if (seconds <= 0) return "taking longer than estimated";
    if (seconds < 60) return "less than a minute left";
    return "about " + Math.round(seconds / 60) + " min left";
  }

  // ------------------------------------------------------------------------------------------- rendering
  function state() {
    if (!connected || doc === null) return "offline";
    return doc.running === true ? "running" : "idle";
  }

  function render() {
    var current = state();
    if (document.body.dataset.state !== current) document.body.dataset.state = current;

    ui.connection.dataset.connected = connected ? "true" : "false";
    setAttr(ui.connection, "aria-label", connected ? "Connected" : "Not connected");
    setAttr(ui.connection, "title", connected ? "Live" : "Not connected to the snapshot service");

    renderStatus(current);
    renderLast();

    var running = current === "running";
    ui.button.disabled = !connected || doc === null || running || triggerInFlight || awaitingRun;
    setAttr(ui.button, "aria-busy", triggerInFlight || awaitingRun ? "true" : null);

    var stopping = running && typeof doc.stopping === "string";
    if (!running || stopping) confirmingCancel = false;
    ui.cancel.hidden = !running || stopping || confirmingCancel;
    ui.cancel.disabled = cancelInFlight;
    ui.confirm.hidden = !confirmingCancel;

    renderPause(current);
    renderChecks(current);
    renderHistoryNote();
    tickHistory();
  }

  /** Pause/Resume show only when the service tells its pause state (a service without it shows neither). */
  function renderPause(current) {
    var known = current !== "offline" && "paused" in doc;
    var paused = known && isObject(doc.paused);
    var focused = document.activeElement;
    var hadFocus = focused === ui.pause || focused === ui.resume || ui.pauseForm.contains(focused);
    document.body.dataset.paused = paused ? "true" : "false";
    if (!known || paused) pausing = false;
    ui.pauseForm.hidden = !pausing;
    ui.pause.hidden = !known || paused || pausing;
    ui.resume.hidden = !paused;
    // Not disabled while a request is out (sendPause ignores a second one): a disabled button cannot take the
    // focus handed to it below, when the stream says "paused" before the POST has answered.
    setAttr(ui.resume, "aria-busy", pauseInFlight ? "true" : null);
    ui.pauseYes.disabled = pauseInFlight;
    // The control in use was just hidden (Pause became Resume, or back): keep the keyboard where it was.
    if (hadFocus && focused.closest("[hidden]")) {
      if (!ui.resume.hidden) ui.resume.focus();
      else if (!ui.pause.hidden) ui.pause.focus();
    }
    // While a run runs the status line shows it; a chip keeps the pause in sight.
    ui.paused.hidden = !(paused && current === "running");
    setText(ui.paused, "automatic snapshots paused");
    setAttr(ui.paused, "title", paused ? pausedTitle(doc.paused) : null);
  }

  function pausedTitle(paused) {
    var since = parseTime(paused.since);
    var title = "Paused" + (since !== null ? " since " + localDateTime(since) : "");
    return title + (text(paused.reason) ? ": " + paused.reason : "");
  }

  function renderChecks(current) {
    var checks = current !== "offline" && Array.isArray(doc.checks) ? doc.checks.filter(isObject) : [];
    ui.checks.hidden = checks.length === 0;
    if (!checks.length) {
      setText(ui.checks, "");
      setAttr(ui.checks, "title", null);
      return;
    }
    var first = text(checks[0].message) || CHECK_KINDS[checks[0].kind] || "check failed";
    setText(ui.checks, "⚠ " + first + (checks.length > 1 ? " (+" + (checks.length - 1) + " more)" : ""));
    setAttr(ui.checks, "title", checks.map(function (check) {
      return (CHECK_KINDS[check.kind] || text(check.kind) || "Check") + ": " + text(check.message);
    }).join("\n"));
  }

  function renderStatus(current) {
    var running = current === "running";
    ui.running.hidden = !running;
    ui.queued.hidden = !(doc && connected && doc.queued === true);

    if (current === "offline") {
      ui.eta.hidden = true;
      setText(ui.status, tokenWanted && tokenWanted.forReads ? "Enter the service's token to see snapshots"
        : doc === null && !everFailed ? "Connecting to the snapshot service…"
        : "Snapshot service unreachable — reconnecting…");
      setAttr(ui.status, "title", null);
      return;
    }
    if (running) {
      var stopping = typeof doc.stopping === "string" ? doc.stopping : null;
      setText(ui.status, stopping === null ? "Snapshot: Running..."
        : "Stopping…" + (stopping ? " (" + stopping + ")" : ""));
      setAttr(ui.status, "title", null);
      var progress = doc.progress && typeof doc.progress === "object" ? doc.progress : {};
      var percent = toNumber(progress.progress);
      percent = percent === null ? 0 : Math.min(100, Math.max(0, percent));
      var shown = String(Math.round(percent * 10) / 10);
      var step = typeof progress.step === "string" ? progress.step : "";
      setAttr(ui.progress, "aria-valuenow", shown);
      setAttr(ui.progress, "aria-valuetext", shown + "%" + (step ? " — " + step : ""));
      ui.fill.style.width = percent + "%";
      setText(ui.percent, Math.round(percent) + "%");
      setText(ui.step, step);
      setAttr(ui.step, "title", step || null);
      var left = stopping === null ? etaSeconds() : null;
      ui.eta.hidden = left === null;
      setText(ui.eta, left === null ? "" : etaText(left));
      var finish = left === null ? null : parseTime(doc.eta.finishAt);
      setAttr(ui.eta, "title", left === null ? null
        : (doc.eta.basis === "progress" ? "Estimated from the progress so far"
          : "Estimated from recent runs") + (finish !== null ? "; done about " + localClock(finish) : ""));
      return;
    }
    ui.eta.hidden = true;
    if (isObject(doc.paused)) {
      var reason = text(doc.paused.reason);
      setText(ui.status, "Paused — automatic snapshots off" + (reason ? " (" + reason + ")" : ""));
      setAttr(ui.status, "title", pausedTitle(doc.paused));
      return;
    }
    setText(ui.status, countdownText(remainingMs()));
    var due = parseTime(doc.nextRunAt);
    var every = toNumber(doc.intervalMinutes);
    var title = due === null ? "" : "Next automatic snapshot at " + localClock(due);
    if (every !== null) title += (title ? " " : "") + "(every " + plural(every, "minute") + ")";
    setAttr(ui.status, "title", title || null);
  }

  function renderLast() {
    var last = doc && doc.lastRun && typeof doc.lastRun === "object" ? doc.lastRun : null;
    var key = last ? JSON.stringify(last) + "|" + agoText(parseTime(last.finishedAt) || 0) : "none";
    if (ui.last.dataset.key === key) return;
    ui.last.dataset.key = key;
    ui.last.textContent = "";
    if (!last) {
      ui.last.dataset.outcome = "none";
      if (doc) ui.last.append("No snapshot has run yet");
      return;
    }
    var status = typeof last.status === "string" ? last.status : "unknown";
    ui.last.dataset.outcome = status;
    ui.last.append("Last: ");
    var outcome = document.createElement("span");
    outcome.className = "snapbar-outcome";
    outcome.textContent = OUTCOMES[status] || status;
    ui.last.append(outcome);

    var parts = [];
    var finished = parseTime(last.finishedAt);
    if (finished !== null) {
      var ago = agoText(finished);
      parts.push(localClock(finished) + (ago ? " (" + ago + ")" : ""));
    }
    var trigger = typeof last.trigger === "string" ? TRIGGERS[last.trigger] || last.trigger : "";
    if (trigger) parts.push(trigger);
    parts.forEach(function (part) { ui.last.append(" · " + part); });

    var title = [];
    if (finished !== null) title.push("Finished " + new Date(finished).toLocaleString());
    if (typeof last.reason === "string" && last.reason) title.push("Reason: " + last.reason);
    if (toNumber(last.durationSeconds) !== null) title.push("Took " + last.durationSeconds + " s");
    if (last.error) {
      var error = document.createElement("span");
      error.className = "snapbar-error";
      error.textContent = " — " + firstLine(last.error);
      ui.last.append(error);
      title.push(String(last.error));
    }
    setAttr(ui.last, "title", title.length ? title.join("\n") : null);
  }

  // ------------------------------------------------------------------------------------------ the stream
  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (source) source.close();
    var es;
    try {
      es = new EventSource(EVENTS_URL);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    source = es;
    es.addEventListener("open", function () {
      if (source !== es) return;
      connected = true;
      cookieRenewed = false;
      reconnectDelay = RECONNECT_MIN_MS;
      generation += 1;
      render();
    });
    es.addEventListener("status", function (event) {
      if (source !== es) return;
      onStatus(event.data);
    });
    es.addEventListener("error", function () {
      if (source !== es) return;
      if (es.readyState !== EventSource.OPEN) {
        connected = false;
        everFailed = true;
        render();
      }
      // CONNECTING: the browser retries by itself (the server asks for 2 s). CLOSED: it gave up (an HTTP
      // error or a wrong content type, e.g. from a proxy while the service restarts, or a 401), so we find
      // out which and retry.
      if (es.readyState === EventSource.CLOSED) probeReads();
    });
  }

  /** The stream was refused: EventSource does not say why, so ask for the status once, with the bearer header
   * if the page has a token. Under --token-for-reads a good token's answer also carries the service's read
   * cookie, so the stream is opened again at once (once: if it is refused again, for whatever reason, the
   * page backs off as usual). A 401 to a request that carried the token means the token is wrong: forget it
   * and ask. A refused stream alone says nothing about the token (the cookie may be missing, or another
   * service's), so the token is never forgotten for that. Anything else: reconnect later. */
  function probeReads() {
    var token = storedToken();
    fetch(STATUS_URL, { cache: "no-store", credentials: "same-origin", headers: withToken({}) })
      .then(function (response) {
        if (response.status === 401) {
          unauthorized(token, probeReads, true);
          return;
        }
        if (response.ok && token && !cookieRenewed) {
          cookieRenewed = true;
          connect();
          return;
        }
        scheduleReconnect();
      })
      .catch(function () {
        scheduleReconnect();
      });
  }

  function scheduleReconnect() {
    if (reconnectTimer !== null) return;
    var delay = reconnectDelay;
    reconnectDelay = Math.min(RECONNECT_MAX_MS, reconnectDelay * 2);
    reconnectTimer = setTimeout(function () {
      reconnectTimer = null;
      connect();
    }, delay);
  }

  function onStatus(data) {
    var parsed;
    try {
      parsed = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return;
    var arrival = performance.now();
    doc = parsed;
    docArrival = arrival;
    connected = true;
    noteServerTime(parsed.serverTime, arrival, generation);
    if (parsed.running === true) {
      sawRunningSinceClick = true;
      settleTrigger();
    }
    render();
    var key = historyKey();
    if (key !== history.key) {
      history.key = key;
      if (history.loaded) renderHistory(); // the stream's news at once, the rest when the fetch answers
      loadHistory();
    }
  }

  /** One fresh reading of the server's clock per connection (see the note at the top). */
  // ------------------------------------------------------------------------------------------- Run Now
  function showMessage(text, kind) {
    clearTimeout(messageTimer);
    setText(ui.message, text);
    ui.message.dataset.kind = kind || "";
    if (text) {
      messageTimer = setTimeout(function () { setText(ui.message, ""); }, MESSAGE_MS);
    }
  }

  function settleTrigger() {
    awaitingRun = false;
    clearTimeout(awaitingTimer);
    awaitingTimer = null;
  }

  // --------------------------------------------------------------------------------------------- the token
  function storedToken() {
    try {
      return window.localStorage.getItem(TOKEN_KEY) || memoryToken;
    } catch (e) {
      return memoryToken;
    }
  }

  function storeToken(token) {
    memoryToken = token;
    try {
      window.localStorage.setItem(TOKEN_KEY, token);
    } catch (e) {
      // private mode or storage full: the token lasts as long as the page
    }
  }

  function forgetToken() {
    memoryToken = null;
    try {
      window.localStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      // nothing stored
    }
  }

  function withToken(headers) {
    var token = storedToken();
    if (token) headers.Authorization = "Bearer " + token;
    return headers;
  }

  /** A 401 to a request that carried `sentToken` in the bearer header: that token stopped working (forget
   * it). Without one, we had none. Ask, and `retry` once given. */
  function unauthorized(sentToken, retry, forReads) {
    if (sentToken) forgetToken();
    tokenWanted = { retry: retry, forReads: !!forReads };
    setText(ui.tokenLabel, sentToken ? "Token not accepted, try again" : "Token needed");
    var wasHidden = ui.tokenForm.hidden;
    ui.tokenForm.hidden = false;
    if (wasHidden || sentToken) {
      ui.tokenInput.value = "";
      ui.tokenInput.focus();
    }
    render();
  }

  function onTokenSubmit(event) {
    event.preventDefault();
    var token = ui.tokenInput.value.trim();
    if (!token) {
      ui.tokenInput.focus();
      return;
    }
    var wanted = tokenWanted;
    tokenWanted = null;
    ui.tokenInput.value = "";
    ui.tokenForm.hidden = true;
    storeToken(token);
    cookieRenewed = false;
    render();
    if (wanted) wanted.retry();
  }

  /** POST `url` with the token if we have one, then `onDone(response, parsedBody)`; on a 401 the token is
   * asked for instead, and `retry` runs once it is given. */
  function post(url, body, retry, onDone, headers) {
    var sentToken = storedToken();
    var init = { method: "POST", headers: withToken(headers || {}) };
    if (body !== null) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (response) {
      if (response.status === 401) {
        unauthorized(sentToken, retry, false);
        return null;
      }
      return response.json().catch(function () { return null; }).then(function (parsed) {
        onDone(response, parsed);
      });
    });
  }

  function errorText(response, body) {
    return body && typeof body.message === "string" ? body.message : "HTTP " + response.status;
  }

  // ------------------------------------------------------------------------------------------- Run Now
  function runNow() {
    if (triggerInFlight || ui.button.disabled) return;
    triggerInFlight = true;
    sawRunningSinceClick = false;
    showMessage("");
    render();
    // A fresh key per request: the same click sent twice (a retried request) starts one run, server-side.
    post(TRIGGER_URL, { reason: "web" }, runNow, function (response, body) {
      if (!response.ok || !body || body.success === false) {
        showMessage("Could not start a snapshot: " + errorText(response, body), "error");
        return;
      }
      if (body.queued === true) showMessage("follow-up queued", "info");
      if (!sawRunningSinceClick) {
        // Keep the button disabled until the run shows up on the stream, so a double click is one run.
        awaitingRun = true;
        awaitingTimer = setTimeout(function () { settleTrigger(); render(); }, TRIGGER_SETTLE_MS);
      }
    }, { "Idempotency-Key": newKey() })
      .catch(function () {
        showMessage("Could not reach the snapshot service", "error");
      })
      .then(function () {
        triggerInFlight = false;
        render();
      });
  }

  // -------------------------------------------------------------------------------------------- Cancel
  function askCancel() {
    confirmingCancel = true;
    render();
    ui.cancelNo.focus();
  }

  function keepRunning() {
    confirmingCancel = false;
    render();
    if (!ui.cancel.hidden) ui.cancel.focus();
  }

  function cancelRun() {
    confirmingCancel = false;
    if (cancelInFlight) return;
    cancelInFlight = true;
    showMessage("");
    render();
    post(CANCEL_URL, null, cancelRun, function (response, body) {
      // Success shows on the stream: "Stopping… (cancelled by request)", then the outcome.
      if (!response.ok || !body || body.success === false) {
        showMessage("Could not cancel: " + errorText(response, body), "error");
      }
    })
      .catch(function () {
        showMessage("Could not reach the snapshot service", "error");
      })
      .then(function () {
        cancelInFlight = false;
        render();
      });
  }

  // ------------------------------------------------------------------------------------- Pause / Resume
  function askPause() {
    pausing = true;
    ui.pauseReason.value = "";
    render();
    ui.pauseReason.focus();
  }

  function keepSchedule() {
    pausing = false;
    render();
    if (!ui.pause.hidden) ui.pause.focus();
  }

  function onPauseSubmit(event) {
    event.preventDefault();
    var reason = ui.pauseReason.value.trim();
    sendPause(PAUSE_URL, reason ? { reason: reason } : null, "Could not pause");
  }

  function resumeRun() {
    sendPause(RESUME_URL, null, "Could not resume");
  }

  /** The answer shows on the stream (the bar changes); only a failure is said here. */
  function sendPause(url, body, failure) {
    if (pauseInFlight) return;
    pauseInFlight = true;
    showMessage("");
    render();
    var retry = function () { sendPause(url, body, failure); };
    post(url, body, retry, function (response, answer) {
      if (!response.ok || !answer || answer.success === false) {
        showMessage(failure + ": " + errorText(response, answer), "error");
        return;
      }
      pausing = false;
    })
      .catch(function () {
        showMessage("Could not reach the snapshot service", "error");
      })
      .then(function () {
        pauseInFlight = false;
        render();
      });
  }

  // --------------------------------------------------------------------------------------------- history
  /** What the history reflects: the connection and the runs the stream names. When it changes, refetch. */
  function historyKey() {
    var last = isObject(doc.lastRun) ? doc.lastRun : {};
    var current = isObject(doc.currentRun) ? doc.currentRun : {};
    return [generation, last.runId, last.status, last.finishedAt, current.runId].join("|");
  }

  /** GET `url` with the token when the page has one (the read cookie is sent too, same-origin). */
  function read(url, headers) {
    return fetch(url, { cache: "no-store", credentials: "same-origin", headers: withToken(headers || {}) });
  }

  function answerMessage(response) {
    return response.json().then(function (body) {
      return body && typeof body.message === "string" ? body.message : "HTTP " + response.status;
    }, function () {
      return "HTTP " + response.status;
    });
  }

  /** Why the panel may be out of date (null: it is not); shown until a fetch succeeds again. */
  function historyProblem(message) {
    history.problem = message;
    renderHistory();
  }

  function loadHistory() {
    if (history.loading) {
      history.again = true;
      return;
    }
    history.loading = true;
    history.again = false;
    var limit = Math.min(HISTORY_MAX, history.limit);
    fetchRuns("?limit=" + limit).then(function (page) {
      if (page) {
        history.loaded = true;
        history.rows = page.runs;
        history.nextCursor = page.nextCursor;
        renderHistory();
      }
    }).then(function () {
      history.loading = false;
      if (history.again) loadHistory();
    });
  }

  function loadMore() {
    if (history.loadingMore || !history.nextCursor) return;
    history.loadingMore = true;
    ui.historyMore.disabled = true;
    var cursor = history.nextCursor;
    fetchRuns("?limit=" + HISTORY_PAGE + "&cursor=" + encodeURIComponent(cursor), true).then(function (page) {
      if (page === "gone") {
        // The run the cursor named was pruned meanwhile: fetch the whole list again, one page longer.
        history.limit = Math.min(HISTORY_MAX, history.rows.length + HISTORY_PAGE);
        loadHistory();
      } else if (page) {
        var seen = {};
        history.rows.forEach(function (run) { seen[run.runId] = true; });
        history.rows = history.rows.concat(page.runs.filter(function (run) { return !seen[run.runId]; }));
        history.nextCursor = page.nextCursor;
        history.limit = history.rows.length;
        renderHistory();
      }
    }).then(function () {
      history.loadingMore = false;
      ui.historyMore.disabled = false;
    });
  }

  /** One page of runs, or null (the note says why); with `cursorGone`, a 404 gives "gone" instead. */
  function fetchRuns(query, cursorGone) {
    return read(RUNS_URL + query).then(function (response) {
      if (response.ok) {
        return response.json().then(function (body) {
          if (!isObject(body) || !Array.isArray(body.runs)) throw new Error("not a page of runs");
          history.available = true;
          history.problem = null;
          return {
            runs: body.runs.filter(function (run) { return isObject(run) && typeof run.runId === "string"; }),
            nextCursor: typeof body.nextCursor === "string" ? body.nextCursor : null,
          };
        });
      }
      if (response.status === 404 && cursorGone) return "gone";
      return answerMessage(response).then(function (message) {
        if (response.status === 404) {
          history.available = false; // a service without a run history
          historyProblem("This service keeps no run history");
        } else if (response.status === 401) {
          historyProblem("The run history needs the service's token");
        } else {
          historyProblem("History unavailable: " + message);
        }
        return null;
      });
    }).catch(function () {
      historyProblem("History unavailable — the service cannot be reached");
      return null;
    });
  }

  /** The fetched rows, with the running run from the stream on top: the status event that says a run started
   * can arrive before the history has it, and the stream's record of it is the freshest anyway. */
  function shownRuns() {
    var rows = history.rows.filter(isObject);
    var current = doc && connected && isObject(doc.currentRun) && typeof doc.currentRun.runId === "string"
      ? doc.currentRun : null;
    var last = doc && isObject(doc.lastRun) ? doc.lastRun : null;
    if (last !== null) {
      rows = rows.map(function (run) { return run.runId === last.runId ? last : run; });
    }
    if (current === null || !history.available) return rows;
    return [current].concat(rows.filter(function (run) { return run.runId !== current.runId; }));
  }

  function renderHistory() {
    var rows = shownRuns();
    var body = ui.historyRows;
    // The rows are rebuilt: a keyboard user on one of them stays on it (the same run's new row).
    var focused = body.contains(document.activeElement) ? document.activeElement.closest("tr") : null;
    var focusedRun = focused ? focused.dataset.runId : null;
    body.textContent = "";
    rows.forEach(function (run) { body.append(historyRow(run)); });
    if (focusedRun !== null) {
      var again = Array.prototype.find.call(body.rows, function (r) { return r.dataset.runId === focusedRun; });
      if (again) again.querySelector("button").focus({ preventScroll: true });
    }
    ui.historyTable.hidden = rows.length === 0;
    ui.historyMore.hidden = !history.nextCursor;
    renderHistoryNote();
    tickHistory();
  }

  /** Why the panel shows what it shows: a problem, no runs yet, or (before anything could be read) the token. */
  function renderHistoryNote() {
    var note = history.problem;
    if (!note && !history.loaded && tokenWanted && tokenWanted.forReads) note = "Enter the token above to see the history";
    if (!note && history.loaded && shownRuns().length === 0) note = "No snapshot has run yet";
    setText(ui.historyNote, note || "");
  }

  function outcomeOf(run) {
    if (run.status === "running") {
      var current = doc && isObject(doc.currentRun) ? doc.currentRun.runId : null;
      return current === run.runId ? "Running" : "Interrupted";
    }
    return OUTCOMES[run.status] || text(run.status) || "Unknown";
  }

  function triggerLabel(source) {
    return TRIGGERS[source] || text(source) || "?";
  }

  function historyRow(run) {
    var row = document.createElement("tr");
    row.dataset.runId = run.runId;
    row.dataset.outcome = text(run.status);
    if (logv && logv.runId === run.runId) row.setAttribute("aria-current", "true");

    var cell = row.insertCell();
    var open = document.createElement("button");
    open.type = "button";
    open.className = "history-open outcome";
    open.dataset.outcome = text(run.status);
    open.textContent = outcomeOf(run);
    open.setAttribute("aria-label", outcomeOf(run) + ": show the log of run " + run.runId);
    open.title = "Show this run's log (" + run.runId + ")";
    cell.append(open);

    cell = row.insertCell();
    var started = parseTime(run.startedAt);
    if (started !== null) {
      var time = document.createElement("time");
      time.dateTime = run.startedAt;
      time.title = localDateTime(started);
      time.dataset.at = String(started);
      time.className = "history-ago";
      cell.append(time);
    }

    cell = row.insertCell();
    cell.className = "history-duration";
    var seconds = toNumber(run.durationSeconds);
    if (seconds !== null) {
      cell.textContent = durationText(seconds);
    } else if (run.status === "running" && started !== null) {
      cell.dataset.since = String(started); // ticks: "running 1 min 5 s"
    }

    cell = row.insertCell();
    var count = Math.max(toNumber(run.triggerCount) || 0, Array.isArray(run.triggers) ? run.triggers.length : 0);
    cell.textContent = triggerLabel(run.trigger) + (count > 1 ? " + " + (count - 1) + " more" : "");
    if (Array.isArray(run.triggers) && run.triggers.length) {
      cell.title = run.triggers.filter(isObject).map(function (t) {
        var at = parseTime(t.at);
        return triggerLabel(t.source) + (at !== null ? " at " + localClock(at) : "") + (t.reason ? ": " + t.reason : "");
      }).join("\n") + (count > run.triggers.length ? "\n… and " + (count - run.triggers.length) + " more" : "");
    }

    cell = row.insertCell();
    cell.className = "history-why";
    if (text(run.reason)) {
      var reason = document.createElement("span");
      reason.className = "history-reason";
      reason.textContent = run.reason;
      cell.append(reason);
    }
    if (text(run.error)) {
      var error = document.createElement("span");
      error.className = "history-error";
      error.textContent = firstLine(run.error);
      cell.append(error);
      cell.title = run.error;
    } else if (run.status === "running" && text(run.step)) {
      var step = document.createElement("span");
      step.className = "history-step";
      step.textContent = run.step;
      cell.append(step);
    }
    return row;
  }

  /** Move the history's relative times along (every second, with the countdown; nothing is fetched). */
  function tickHistory() {
    if (!ui.historyRows) return;
    var now = serverNow();
    ui.historyRows.querySelectorAll("time[data-at]").forEach(function (node) {
      setText(node, shortAgo(Number(node.dataset.at)) || localClock(Number(node.dataset.at)));
    });
    ui.historyRows.querySelectorAll("td[data-since]").forEach(function (node) {
      setText(node, now === null ? "running" : "running " + durationText((now - Number(node.dataset.since)) / 1000));
    });
  }

  function onHistoryClick(event) {
    var row = event.target.closest("tr[data-run-id]");
    if (!row) return;
    var run = shownRuns().find(function (r) { return r.runId === row.dataset.runId; });
    if (run) openLog(run);
  }

  // -------------------------------------------------------------------------------------------- log view
  var encoder = typeof TextEncoder === "function" ? new TextEncoder() : null;

  function byteLength(value) {
    return encoder ? encoder.encode(value).length : unescape(encodeURIComponent(value)).length;
  }

  function logUrl(runId) {
    return RUNS_URL + "/" + encodeURIComponent(runId) + "/log";
  }

  /** Show `run`'s log: its tail at once; if it is running, then its new lines as they come. */
  function openLog(run) {
    closeStream();
    logv = {
      runId: run.runId,
      record: run,
      offset: 0, // bytes of the log file shown (or skipped) so far
      lines: 0,
      source: null,
      ended: run.status !== "running",
      retryTimer: null,
      retryDelay: RECONNECT_MIN_MS,
    };
    var mine = logv;
    ui.logLines.textContent = "";
    ui.logTrimmed.hidden = true;
    ui.logFull.href = logUrl(run.runId);
    setLogTitle(run);
    setText(ui.logState, "Loading…");
    ui.logView.hidden = false;
    markCurrentRow();
    ui.logView.scrollIntoView({ block: "nearest" });
    ui.logLines.focus({ preventScroll: true });

    read(logUrl(run.runId), { Range: "bytes=-" + LOG_TAIL_BYTES }).then(function (response) {
      if (logv !== mine) return null;
      if (response.status === 416) return ""; // an empty log
      if (!response.ok) {
        return answerMessage(response).then(function (message) {
          if (logv !== mine) return;
          if (response.status === 404 && !mine.ended) {
            follow(mine); // a run that just started may have no log file yet: its stream starts at 0
            return;
          }
          mine.ended = true;
          setText(ui.logState, response.status === 404 ? message : "Log unavailable: " + message);
        }).then(function () { return null; });
      }
      var start = 0;
      var range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(response.headers.get("Content-Range") || "");
      if (response.status === 206 && range) start = Number(range[1]);
      return response.text().then(function (body) {
        if (logv !== mine) return null;
        if (start > 0) {
          // The tail starts mid-line (maybe mid-character): drop that first partial line.
          var cut = body.indexOf("\n");
          var dropped = cut < 0 ? body : body.slice(0, cut + 1);
          start += byteLength(dropped);
          body = body.slice(dropped.length);
          showTrimmed();
        }
        mine.offset = start;
        appendLog(mine, body, start);
        return body;
      });
    }).then(function (body) {
      if (logv !== mine || body === null) return;
      if (mine.ended) {
        setLogState(mine);
      } else {
        follow(mine);
      }
    }).catch(function () {
      if (logv !== mine) return;
      setText(ui.logState, "Log unavailable — the service cannot be reached");
    });
  }

  function setLogTitle(run) {
    var started = parseTime(run.startedAt);
    setText(ui.logTitle, "Log — " + outcomeOf(run) + (started !== null ? ", started " + localDateTime(started) : ""));
    setAttr(ui.logTitle, "title", "Run " + run.runId);
  }

  function setLogState(view) {
    var run = view.record;
    if (!view.ended) {
      setText(ui.logState, "Following live…");
      return;
    }
    var took = toNumber(run.durationSeconds);
    var lines = view.lines === 0 ? " — the job printed nothing" : "";
    setText(ui.logState, (OUTCOMES[run.status] || outcomeOf(run)) + (took !== null ? " after " + durationText(took) : "")
      + lines);
  }

  /** Follow the running run's log from `view.offset` over its stream; `end` closes it for good. */
  function follow(view) {
    if (logv !== view || view.ended) return;
    closeStream();
    var es;
    try {
      es = new EventSource(logUrl(view.runId) + "/stream?offset=" + view.offset);
    } catch (e) {
      return;
    }
    view.source = es;
    setLogState(view);
    es.addEventListener("open", function () {
      if (view.source === es) view.retryDelay = RECONNECT_MIN_MS;
    });
    es.addEventListener("log", function (event) {
      if (view.source !== es) return;
      var data;
      try {
        data = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (!isObject(data) || typeof data.text !== "string") return;
      var at = toNumber(data.offset);
      appendLog(view, data.text, at === null ? view.offset : at);
    });
    es.addEventListener("end", function (event) {
      if (view.source !== es) return;
      es.close();
      view.source = null;
      view.ended = true;
      try {
        var record = JSON.parse(event.data);
        if (isObject(record) && record.runId === view.runId) view.record = record;
      } catch (e) {
        // the record is a nicety; the log is complete either way
      }
      setLogTitle(view.record);
      setLogState(view);
    });
    es.addEventListener("error", function () {
      if (view.source !== es) return;
      // Closed by the server or refused: we reopen it ourselves from the offset we reached (the browser's own
      // reconnect would start again from the offset in the URL and repeat lines).
      es.close();
      view.source = null;
      setText(ui.logState, "Reconnecting…");
      var delay = view.retryDelay;
      view.retryDelay = Math.min(RECONNECT_MAX_MS, view.retryDelay * 2);
      view.retryTimer = setTimeout(function () { recheck(view); }, delay);
    });
  }

  /** After a broken log stream: is the run still there, and still running? */
  function recheck(view) {
    view.retryTimer = null;
    if (logv !== view) return;
    read(RUNS_URL + "/" + encodeURIComponent(view.runId)).then(function (response) {
      if (logv !== view) return null;
      if (response.status === 404) {
        view.ended = true;
        setText(ui.logState, "This run is no longer in the history");
        return null;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json().then(function (record) {
        if (logv !== view) return;
        if (isObject(record) && record.status !== "running") {
          view.record = record;
          finish(view); // ended meanwhile: the rest of the log by one plain read
        } else {
          follow(view);
        }
      });
    }).catch(function () {
      if (logv !== view) return;
      var delay = view.retryDelay;
      view.retryDelay = Math.min(RECONNECT_MAX_MS, view.retryDelay * 2);
      setText(ui.logState, "Reconnecting…");
      view.retryTimer = setTimeout(function () { recheck(view); }, delay);
    });
  }

  /** The run ended while its stream was broken: read what is left of its log from our offset, and stop. */
  function finish(view) {
    read(logUrl(view.runId) + "?offset=" + view.offset).then(function (response) {
      if (logv !== view) return null;
      view.ended = true;
      if (response.ok) {
        return response.text().then(function (rest) {
          if (logv !== view) return;
          appendLog(view, rest, view.offset);
          setLogTitle(view.record);
          setLogState(view);
        });
      }
      if (response.status === 416) {
        setLogTitle(view.record);
        setLogState(view); // nothing more was written
        return null;
      }
      return answerMessage(response).then(function (message) {
        if (logv === view) setText(ui.logState, "Log unavailable: " + message);
      });
    }).catch(function () {
      if (logv !== view) return;
      view.ended = false;
      view.retryTimer = setTimeout(function () { recheck(view); }, view.retryDelay);
    });
  }

  /** Append `chunk` (whole lines) that starts at byte `at` of the log; what was shown already is skipped. */
  function appendLog(view, chunk, at) {
    if (chunk === "") return;
    if (at < view.offset) {
      var bytes = encoder ? encoder.encode(chunk) : null;
      var skip = view.offset - at;
      if (!bytes || skip >= bytes.length) return;
      chunk = new TextDecoder().decode(bytes.slice(skip));
      at = view.offset;
    }
    view.offset = at + byteLength(chunk);
    var box = ui.logLines;
    var atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
    var lines = chunk.split("\n");
    if (lines[lines.length - 1] === "") lines.pop();
    var fragment = document.createDocumentFragment();
    lines.forEach(function (line) {
      var node = document.createElement("div");
      node.className = "log-line";
      var kind = /^\d\d:\d\d:\d\d\.\d{3} (out|err) /.exec(line);
      if (kind) node.dataset.stream = kind[1];
      node.textContent = line; // text only: job output is never markup
      fragment.append(node);
    });
    box.append(fragment);
    view.lines += lines.length;
    var extra = box.childElementCount - LOG_MAX_LINES;
    if (extra > 0) {
      while (extra-- > 0) box.firstElementChild.remove();
      showTrimmed();
    }
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  function showTrimmed() {
    if (!ui.logTrimmed.hidden) return;
    ui.logTrimmed.textContent = "Earlier lines are not shown here; they are in the ";
    var link = document.createElement("a");
    link.href = ui.logFull.href;
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = "full log";
    ui.logTrimmed.append(link, ".");
    ui.logTrimmed.hidden = false;
  }

  function closeStream() {
    if (!logv) return;
    if (logv.source) logv.source.close();
    logv.source = null;
    clearTimeout(logv.retryTimer);
    logv.retryTimer = null;
  }

  function closeLog() {
    var runId = logv ? logv.runId : null;
    closeStream();
    logv = null;
    ui.logView.hidden = true;
    ui.logLines.textContent = "";
    markCurrentRow();
    var row = runId && Array.prototype.find.call(ui.historyRows.rows, function (r) { return r.dataset.runId === runId; });
    if (row) row.querySelector("button").focus();
  }

  function markCurrentRow() {
    Array.prototype.forEach.call(ui.historyRows.rows, function (row) {
      setAttr(row, "aria-current", logv && logv.runId === row.dataset.runId ? "true" : null);
    });
  }

  // ---------------------------------------------------------------------------------------------- start
  function start() {
    ui = {
      status: document.getElementById("snapshot-status"),
      connection: document.getElementById("snapshot-connection"),
      running: document.getElementById("snapshot-running"),
      progress: document.getElementById("snapshot-progress"),
      fill: document.getElementById("snapshot-fill"),
      percent: document.getElementById("snapshot-percent"),
      step: document.getElementById("snapshot-step"),
      queued: document.getElementById("snapshot-queued"),
      last: document.getElementById("snapshot-last"),
      message: document.getElementById("run-now-message"),
      button: document.getElementById("run-now"),
      cancel: document.getElementById("cancel-run"),
      confirm: document.getElementById("cancel-confirm"),
      cancelYes: document.getElementById("cancel-yes"),
      cancelNo: document.getElementById("cancel-no"),
      tokenForm: document.getElementById("token-form"),
      tokenLabel: document.getElementById("token-label"),
      tokenInput: document.getElementById("token-input"),
      eta: document.getElementById("snapshot-eta"),
      paused: document.getElementById("snapshot-paused"),
      checks: document.getElementById("snapshot-checks"),
      pause: document.getElementById("pause-run"),
      resume: document.getElementById("resume-run"),
      pauseForm: document.getElementById("pause-form"),
      pauseReason: document.getElementById("pause-reason"),
      pauseYes: document.getElementById("pause-yes"),
      pauseNo: document.getElementById("pause-no"),
      historyNote: document.getElementById("history-note"),
      historyTable: document.getElementById("history-table"),
      historyRows: document.getElementById("history-rows"),
      historyMore: document.getElementById("history-more"),
      logView: document.getElementById("log-view"),
      logTitle: document.getElementById("log-title"),
      logState: document.getElementById("log-state"),
      logFull: document.getElementById("log-full"),
      logClose: document.getElementById("log-close"),
      logTrimmed: document.getElementById("log-trimmed"),
      logLines: document.getElementById("log-lines"),
    };
    ui.button.addEventListener("click", runNow);
    ui.cancel.addEventListener("click", askCancel);
    ui.cancelYes.addEventListener("click", cancelRun);
    ui.cancelNo.addEventListener("click", keepRunning);
    ui.tokenForm.addEventListener("submit", onTokenSubmit);
    ui.pause.addEventListener("click", askPause);
    ui.pauseNo.addEventListener("click", keepSchedule);
    ui.pauseForm.addEventListener("submit", onPauseSubmit);
    ui.pauseForm.addEventListener("keydown", function (event) {
      if (event.key === "Escape") keepSchedule();
    });
    ui.resume.addEventListener("click", resumeRun);
    ui.historyRows.addEventListener("click", onHistoryClick);
    ui.historyMore.addEventListener("click", loadMore);
    ui.logClose.addEventListener("click", closeLog);
    render();
    connect();
    // The countdown and "N minutes ago" move with time alone; nothing is fetched for this.
    setInterval(function () {
      if (doc !== null && connected) render();
    }, 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
