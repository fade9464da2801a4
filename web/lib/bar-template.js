/* The bar's markup and its own styles. The markup is static (no data goes into it as HTML: the element fills
 * it with textContent), parsed once and cloned per element. Parts a host page may style with ::part():
 * bar, dot, job (the job's name, on the bar of a named job), status, progress, fill, percent, step, detail, eta,
 * chip, checks, last, outcome, error, actions, message, button, run-now, cancel, pause, resume, token-form. */

export const BAR_HTML = `
<div class="bar" part="bar" role="region" aria-label="Snapshot status" data-testid="snapshot-bar">
  <div class="now">
    <span class="dot" part="dot" id="snapshot-connection" data-testid="snapshot-connection" data-connected="false"
          role="img" aria-label="Connecting"></span>
    <span class="job" part="job" id="snapshot-job" data-testid="snapshot-job" hidden></span>
    <span class="status" part="status" id="snapshot-status" data-testid="snapshot-status" role="status"
          aria-live="polite" aria-atomic="true">Connecting to the snapshot service…</span>
    <span class="run" id="snapshot-running" data-testid="snapshot-running" hidden>
      <span class="track" part="progress" id="snapshot-progress" data-testid="snapshot-progress" role="progressbar"
            aria-label="Snapshot progress" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0">
        <span class="fill" part="fill" id="snapshot-fill"></span>
      </span>
      <span class="percent" part="percent" id="snapshot-percent" data-testid="snapshot-percent">0%</span>
    </span>
    <span class="what" id="snapshot-what" hidden>
      <span class="step" part="step" id="snapshot-step" data-testid="snapshot-step" aria-live="polite" hidden></span>
      <span class="detail" part="detail" id="snapshot-detail" data-testid="snapshot-detail" hidden></span>
    </span>
    <span class="eta" part="eta" id="snapshot-eta" data-testid="snapshot-eta" hidden></span>
    <span class="chip" part="chip" id="snapshot-queued" data-testid="snapshot-queued" hidden>follow-up queued</span>
    <span class="chip paused" part="chip" id="snapshot-paused" data-testid="snapshot-paused" hidden></span>
    <span class="checks" part="checks" id="snapshot-checks" data-testid="snapshot-checks" hidden></span>
  </div>
  <div class="last" part="last" id="snapshot-last" data-testid="snapshot-last"></div>
  <div class="actions" part="actions">
    <span class="message" part="message" id="run-now-message" data-testid="run-now-message" aria-live="polite"></span>
    <span class="visually-hidden" id="snapshot-alert" data-testid="snapshot-alert" role="alert"></span>
    <form class="token" part="token-form" id="token-form" data-testid="token-form" hidden>
      <label for="token-input" id="token-label" data-testid="token-label">Token needed</label>
      <input id="token-input" data-testid="token-input" type="password" autocomplete="current-password"
             spellcheck="false" size="16" required>
      <button type="submit" part="button" id="token-save" data-testid="token-save">Save</button>
    </form>
    <span class="confirm" id="cancel-confirm" data-testid="cancel-confirm" role="group" aria-label="Confirm cancel"
          hidden>
      <span>Cancel this snapshot?</span>
      <button type="button" part="button" id="cancel-yes" data-testid="cancel-yes">Yes, cancel</button>
      <button type="button" part="button" id="cancel-no" data-testid="cancel-no">No</button>
    </span>
    <form class="pause-form" id="pause-form" data-testid="pause-form" aria-label="Pause automatic snapshots" hidden>
      <label for="pause-reason">Pause, reason (optional)</label>
      <input id="pause-reason" data-testid="pause-reason" type="text" maxlength="500" size="18" autocomplete="off"
             placeholder="e.g. maintenance">
      <button type="submit" part="button" id="pause-yes" data-testid="pause-yes">Pause</button>
      <button type="button" part="button" id="pause-no" data-testid="pause-no">Back</button>
    </form>
    <button type="button" part="button pause" id="pause-run" data-testid="pause-run" hidden
            title="Stop automatic snapshots until resumed (Run Now still works)">Pause</button>
    <button type="button" part="button resume" id="resume-run" data-testid="resume-run" hidden>Resume</button>
    <button type="button" part="button cancel" id="cancel-run" data-testid="cancel-run" hidden>Cancel</button>
    <button type="button" part="button run-now" class="primary" id="run-now" data-testid="run-now" disabled
            hidden>Run Now</button>
  </div>
</div>`;

/* Every row wraps rather than squeezes: an item moves to the next line when it does not fit, so nothing is
 * drawn over anything else or pushed past the edge. The step takes at least 12em (a second line before
 * that) and shows two lines at most; its whole text is on hover, on focus (it is focusable) and on a tap.
 * The step's detail ("repo 5/15: octo/api") is a line of its own under it, cut to that line the same way
 * (whole on hover, focus and tap); a compact bar has no room for it: there it is the progress bar's title. */
export const BAR_CSS = `
:host {
  display: block;
  --_height: var(--snapshot-bar-height, 44px);
}
.bar {
  display: flex;
  flex-wrap: wrap;
  align-items: center;
  gap: 6px 16px;
  min-height: var(--_height);
  padding: 6px 16px;
  background: var(--_bg);
  color: var(--_fg);
  border-bottom: 1px solid var(--_border);
}
.now {
  display: flex;
  flex-wrap: wrap;
  align-items: center;
  gap: 4px 10px;
  flex: 1 1 24em;
  min-width: 0;
}
.dot {
  flex: none;
  width: 8px;
  height: 8px;
  border-radius: 50%;
  background: var(--_muted);
}
.dot[data-connected="true"] { background: var(--_ok); }
.status { font-weight: 600; min-width: 0; max-width: calc(100% - 18px); overflow-wrap: anywhere; }
/* A named job's bar: its name in bold, what it does beside it in plain weight. */
.job { font-weight: 700; min-width: 0; max-width: calc(100% - 18px); overflow-wrap: anywhere; }
:host([job]) .status { font-weight: 400; }
.run { display: inline-flex; align-items: center; gap: 8px; flex: none; }
.track {
  display: block;
  width: 120px;
  height: 8px;
  border-radius: 4px;
  background: var(--_track);
  overflow: hidden;
}
.fill { display: block; height: 100%; width: 0; background: var(--_accent); transition: width 0.3s ease; }
.percent { font-variant-numeric: tabular-nums; min-width: 3ch; }
.what {
  flex: 1 1 16em;
  min-width: min(12em, 100%);
  display: flex;
  flex-direction: column;
}
.step, .detail {
  color: var(--_fg);
  overflow-wrap: anywhere;
  display: -webkit-box;
  -webkit-box-orient: vertical;
  -webkit-line-clamp: 2;
  overflow: hidden;
  cursor: default;
}
.detail { color: var(--_muted); font-size: 0.9em; -webkit-line-clamp: 1; }
.step:hover, .step:focus, .step[data-expanded],
.detail:hover, .detail:focus, .detail[data-expanded] { -webkit-line-clamp: unset; }
.eta, .checks { color: var(--_muted); }
.checks { color: var(--_warn); overflow-wrap: anywhere; min-width: 0; }
.chip {
  padding: 0 8px;
  border: 1px solid var(--_border);
  border-radius: 999px;
  color: var(--_muted);
  font-size: 0.9em;
  white-space: nowrap;
}
.chip.paused { color: var(--_warn); }
.last { flex: 0 1 auto; min-width: 0; color: var(--_muted); overflow-wrap: anywhere; }
.last[data-outcome="completed"] .outcome { color: var(--_ok); font-weight: 600; }
.last[data-outcome="error"] .outcome, .last .error { color: var(--_error); }
.last[data-outcome="error"] .outcome { font-weight: 600; }
.actions {
  display: flex;
  flex-wrap: wrap;
  align-items: center;
  justify-content: flex-end;
  gap: 6px 8px;
  margin-left: auto;
  max-width: 100%;
}
.message { min-width: 0; overflow-wrap: anywhere; }
.message[data-kind="error"] { color: var(--_error); }
.token, .confirm, .pause-form { display: inline-flex; flex-wrap: wrap; align-items: center; gap: 6px; min-width: 0; }
.pause-form label, .token label { white-space: nowrap; }
button.primary { background: var(--_accent); border-color: var(--_accent); color: var(--_on-accent); font-weight: 600; }
:host([compact]) .bar { min-height: var(--snapshot-bar-height, 32px); padding: 2px 10px; gap: 4px 10px; }
:host([compact]) .step { -webkit-line-clamp: 1; }
:host([compact]) .what { flex-basis: 12em; }
:host([compact]) .detail { display: none; }
:host([compact]) .last { flex: 0 1 18em; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
:host([compact]) .track { width: 80px; }
:host([compact]) button { min-height: 1.8em; padding: 0 0.6em; }
`;

let template = null;

/** A fresh copy of the bar's markup. */
export function barContent() {
  if (template === null) {
    template = document.createElement("template");
    template.innerHTML = BAR_HTML;
  }
  return template.content.cloneNode(true);
}
