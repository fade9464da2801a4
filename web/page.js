/* Our own page: the elements, and what ties them together — a history row opens that run's log and its
 * steps (a second <snapshot-steps> with the run's `run-id`, beside the log), and the open log's row is
 * marked in the history. Everything else is the elements' own. */

import "./snapshot-bar.js";
import "./snapshot-history.js";
import "./snapshot-log.js";
import "./snapshot-step-chart.js";
import "./snapshot-steps.js";

const history = document.querySelector("snapshot-history");
const log = document.querySelector("snapshot-log");
let runSteps = null; // the open run's steps, while its log is open

/** Show `runId`'s steps beside its log (the element is made when a log opens and removed when it closes,
 * so no closed view follows anything). */
function showSteps(runId) {
  if (runSteps === null) {
    runSteps = document.createElement("snapshot-steps");
    runSteps.id = "run-steps";
    log.after(runSteps);
  }
  runSteps.runId = runId;
}

if (history && log) {
  history.addEventListener("snapshot-open-log", (event) => {
    log.open(event.detail.run);
    showSteps(event.detail.run.runId);
  });
  log.addEventListener("snapshot-log-opened", (event) => { history.selectedRunId = event.detail.run.runId; });
  log.addEventListener("snapshot-log-closed", (event) => {
    history.selectedRunId = null;
    if (runSteps !== null) runSteps.remove();
    runSteps = null;
    history.focusRun(event.detail.runId); // the keyboard goes back to the row it came from
  });
}
