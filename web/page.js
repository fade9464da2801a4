/* Our own page: the elements, and what ties them together — a history row opens that run's log and its
 * steps (a second <snapshot-steps> with the run's `run-id`, beside the log), and the open log's row is
 * marked in the history; and, on a service with several jobs, a compact <snapshot-bar job=NAME> for each job
 * but the default one (whose bar is on top), from the list of jobs the shared stream reads (GET /api/jobs) and
 * every job that shows up on it later, as the default job's bar tells them (`snapshot-jobs`). Everything else
 * is the elements' own. */

import "./snapshot-bar.js";
import "./snapshot-history.js";
import "./snapshot-log.js";
import "./snapshot-step-chart.js";
import "./snapshot-steps.js";
import { listChanges, otherJobs } from "./lib/demux.js";

const bar = document.querySelector(".top snapshot-bar");
const history = document.querySelector("snapshot-history");
const log = document.querySelector("snapshot-log");
const jobs = document.getElementById("jobs");
const jobList = document.getElementById("job-list");
let runSteps = null; // the open run's steps, while its log is open
let service = { defaultJob: null, jobs: [], several: false }; // the service's jobs, as the stream says them

/** One compact bar per job but the default one: added as jobs appear, removed when a reload removed them. */
function showJobs(view) {
  service = view;
  const wanted = otherJobs(view);
  const entries = new Map([...jobList.children].map((item) => [item.dataset.job, item]));
  const { add, remove } = listChanges([...entries.keys()], wanted);
  for (const name of remove) entries.get(name).remove();
  for (const name of add) {
    const bar = document.createElement("snapshot-bar");
    bar.setAttribute("job", name);
    bar.setAttribute("compact", "");
    const item = document.createElement("li");
    item.dataset.job = name;
    item.append(bar);
    jobList.append(item);
  }
  jobs.hidden = wanted.length === 0;
}

/** The job attribute that reads `run`'s log and steps: none for the default job's runs (read under
 * /api/snapshot, as on a service with one job), the run's job for another job's. */
function jobOf(run) {
  return service.several && typeof run.job === "string" && run.job !== service.defaultJob ? run.job : null;
}

function setJob(element, job) {
  if (job === null) element.removeAttribute("job");
  else element.setAttribute("job", job);
}

/** Show `run`'s steps beside its log (the element is made when a log opens and removed when it closes,
 * so no closed view follows anything). */
function showSteps(run) {
  if (runSteps === null) {
    runSteps = document.createElement("snapshot-steps");
    runSteps.id = "run-steps";
    setJob(runSteps, jobOf(run));
    log.after(runSteps);
  }
  setJob(runSteps, jobOf(run));
  runSteps.runId = run.runId;
}

// The default job's bar says the service's jobs (it shares the page's one stream, which reads them): the list
// lives as long as that bar, and opens no connection of its own.
if (bar && jobs && jobList) bar.addEventListener("snapshot-jobs", (event) => showJobs(event.detail));

if (history && log) {
  history.addEventListener("snapshot-open-log", (event) => {
    const run = event.detail.run;
    setJob(log, jobOf(run)); // another job's run: the open log (of another job) closes first
    log.open(run);
    showSteps(run);
  });
  log.addEventListener("snapshot-log-opened", (event) => { history.selectedRunId = event.detail.run.runId; });
  log.addEventListener("snapshot-log-closed", (event) => {
    history.selectedRunId = null;
    if (runSteps !== null) runSteps.remove();
    runSteps = null;
    history.focusRun(event.detail.runId); // the keyboard goes back to the row it came from
  });
}
