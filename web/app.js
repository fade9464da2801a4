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
 * derived from the token, never the token, good for reads only) that the stream then carries. The page never
 * writes the token into a cookie: cookies ignore ports, so every other server on this host would receive it.
 */
(function () {
  "use strict";

  var EVENTS_URL = "/api/snapshot/events";
  var TRIGGER_URL = "/api/snapshot/trigger";
  var CANCEL_URL = "/api/snapshot/cancel";
  var STATUS_URL = "/api/snapshot/status";
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
  }

  function renderStatus(current) {
    var running = current === "running";
    ui.running.hidden = !running;
    ui.queued.hidden = !(doc && connected && doc.queued === true);

    if (current === "offline") {
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
  function post(url, body, retry, onDone) {
    var sentToken = storedToken();
    var init = { method: "POST", headers: withToken({}) };
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
    })
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
    };
    ui.button.addEventListener("click", runNow);
    ui.cancel.addEventListener("click", askCancel);
    ui.cancelYes.addEventListener("click", cancelRun);
    ui.cancelNo.addEventListener("click", keepRunning);
    ui.tokenForm.addEventListener("submit", onTokenSubmit);
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
