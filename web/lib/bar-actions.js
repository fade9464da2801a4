/* The bar's actions: Run Now, Cancel (with a confirmation), Pause (with an optional reason) and Resume, and
 * the token form. Installed on the element's class by snapshot-bar.js; `this` is the element.
 *
 * Each change is a POST with the token when the page holds one. A 401 shows the token form and retries the
 * action once a token is given. The answer to a change mostly shows on the stream (the bar changes); only
 * failures are said in the bar's message. */

import { Api, newKey } from "./api.js";
import { tokens } from "./token.js";

const TRIGGER_SETTLE_MS = 5000;
const UNREACHABLE = "Could not reach the snapshot service";

function errorText(response, body) {
  return body && typeof body.message === "string" ? body.message : "HTTP " + response.status;
}

const actions = {
  api() {
    if (!this._api || this._api.server !== this.server || this._api.job !== this.job) {
      this._api = new Api(this.server, this.job);
    }
    return this._api;
  },

  /** POST `path`; on a 401 ask for the token and run `retry` once given; else `onDone(response, body)`. */
  async post(path, body, retry, onDone, headers) {
    const answer = await this.api().post(path, body, headers);
    if (answer.unauthorized) {
      this.wantToken(retry, answer.sent !== null);
      return;
    }
    onDone(answer.response, answer.body);
  },

  /** A change was refused for want of a token (`refused`: the one sent was wrong): ask, then `retry`. */
  wantToken(retry, refused) {
    const wasHidden = this.ui["token-form"].hidden;
    this.tokenWanted = { retry };
    this.ui["token-label"].textContent = refused ? "Token not accepted, try again" : "Token needed";
    this.render();
    if (!wasHidden) this.ui["token-input"].value = "";
    this.ui["token-input"].focus();
  },

  onTokenSubmit(event) {
    event.preventDefault();
    const input = this.ui["token-input"];
    const token = input.value.trim();
    if (!token) {
      input.focus();
      return;
    }
    const wanted = this.tokenWanted;
    this.tokenWanted = null;
    input.value = "";
    this.ui["token-form"].hidden = true;
    tokens.set(this.server, token); // a stream that waited for it reconnects (stream.js)
    this.render();
    if (wanted) wanted.retry();
  },

  runNow() {
    const f = this.flags;
    if (f.triggering || this.ui["run-now"].disabled) return;
    f.triggering = true;
    f.sawRunning = false;
    this.showMessage("");
    this.render();
    // A fresh key per request: the same click sent twice (a retried request) starts one run, server-side.
    this.post("trigger", { reason: "web" }, () => this.runNow(), (response, body) => {
      if (!response.ok || !body || body.success === false) {
        this.showMessage("Could not start a " + this.words.noun + ": " + errorText(response, body), "error");
        return;
      }
      if (body.queued === true) this.showMessage("follow-up queued", "info");
      if (!f.sawRunning) {
        // Keep the button disabled until the run shows up on the stream, so a double click is one run.
        f.awaitingRun = true;
        this.later(TRIGGER_SETTLE_MS, () => { f.awaitingRun = false; this.render(); });
      }
    }, { "Idempotency-Key": newKey() })
      .catch(() => this.showMessage(UNREACHABLE, "error"))
      .finally(() => { f.triggering = false; this.render(); });
  },

  askCancel() {
    this.flags.confirming = true;
    this.render();
    this.ui["cancel-no"].focus();
  },

  keepRunning() {
    this.flags.confirming = false;
    this.render();
    if (!this.ui["cancel-run"].hidden) this.ui["cancel-run"].focus();
  },

  cancelRun() {
    const f = this.flags;
    f.confirming = false;
    if (f.cancelling) return;
    f.cancelling = true;
    this.showMessage("");
    this.render();
    // Success shows on the stream: "Stopping… (cancelled by request)", then the outcome.
    this.post("cancel", null, () => this.cancelRun(), (response, body) => {
      if (!response.ok || !body || body.success === false) {
        this.showMessage("Could not cancel: " + errorText(response, body), "error");
      }
    })
      .catch(() => this.showMessage(UNREACHABLE, "error"))
      .finally(() => { f.cancelling = false; this.render(); });
  },

  askPause() {
    this.flags.pausing = true;
    this.ui["pause-reason"].value = "";
    this.render();
    this.ui["pause-reason"].focus();
  },

  keepSchedule() {
    this.flags.pausing = false;
    this.render();
    if (!this.ui["pause-run"].hidden) this.ui["pause-run"].focus();
  },

  onPauseSubmit(event) {
    event.preventDefault();
    const reason = this.ui["pause-reason"].value.trim();
    this.sendPause("pause", reason ? { reason } : null, "Could not pause");
  },

  sendPause(path, body, failure) {
    const f = this.flags;
    if (f.pauseInFlight) return;
    f.pauseInFlight = true;
    this.showMessage("");
    this.render();
    this.post(path, body, () => this.sendPause(path, body, failure), (response, answer) => {
      if (!response.ok || !answer || answer.success === false) {
        this.showMessage(failure + ": " + errorText(response, answer), "error");
        return;
      }
      f.pausing = false;
    })
      .catch(() => this.showMessage(UNREACHABLE, "error"))
      .finally(() => { f.pauseInFlight = false; this.render(); });
  },
};

/** Give the element class `cls` the actions above. */
export function installActions(cls) {
  Object.assign(cls.prototype, actions);
}
