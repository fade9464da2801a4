// The host page's side: it listens to the bar's events (and records them for the tests), reloads "its data"
// when a snapshot finishes, and may hand the bar the service's token (from the address's #fragment, which no
// request carries).
window.__events = [];
for (const type of ["snapshot-status", "snapshot-run-started", "snapshot-run-finished"]) {
  document.addEventListener(type, (event) => {
    const run = event.detail && event.detail.run;
    window.__events.push({ type, runId: run ? run.runId : null, status: run ? run.status : null });
  });
}
document.addEventListener("snapshot-run-finished", (event) => {
  const run = event.detail.run;
  document.getElementById("data-from").textContent = `Data from snapshot ${run.runId} (${run.status})`;
});
const token = new URLSearchParams(location.hash.slice(1)).get("token");
if (token) {
  for (const bar of document.querySelectorAll("snapshot-bar")) bar.token = token;
}
