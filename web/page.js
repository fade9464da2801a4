/* Our own page: the three elements, and the one thing that ties them together — a history row opens that
 * run's log, and the open log's row is marked in the history. Everything else is the elements' own. */

import "./snapshot-bar.js";
import "./snapshot-history.js";
import "./snapshot-log.js";

const history = document.querySelector("snapshot-history");
const log = document.querySelector("snapshot-log");

if (history && log) {
  history.addEventListener("snapshot-open-log", (event) => log.open(event.detail.run));
  log.addEventListener("snapshot-log-opened", (event) => { history.selectedRunId = event.detail.run.runId; });
  log.addEventListener("snapshot-log-closed", (event) => {
    history.selectedRunId = null;
    history.focusRun(event.detail.runId); // the keyboard goes back to the row it came from
  });
}
