"""The API contract: ``orchestrator/http/openapi.json`` describes the whole HTTP API, and a running service keeps to it.

Schemathesis (its CLI, every check) generates requests from the document and sends them to a real
``python -m orchestrator serve`` process; the run fails on any 5xx and on any answer (status, headers, body)
that the document does not allow. Three services: an open one, where the fuzzing reaches every handler, one
with a token (``--token-for-reads``), where the 401 and 429 answers are checked against the document, and one
with a jobs file of three jobs (an interval job, a cron job, one that runs ``after`` the first), whose default
job is not named ``snapshot``. A job named in a path is mostly one the service has (a Schemathesis dictionary
of its names), else any name of the right shape (404).

The event stream never ends, so Schemathesis reads one event of it per request (``max-stream-events = 1``,
set for that operation in a config file) and validates it against the document; ``--request-timeout`` bounds
a request that gets no event at all (a ``Last-Event-ID`` that happens to be the latest version). The document
does not list ``retry`` as required in an event although the service sends it with every one: Schemathesis
4.32.5 cuts a CRLF stream (aiohttp-sse's) at the first line break, after ``data`` and before ``retry``.

Reproduce a failure by hand with the command the test prints (it is the same as the README's).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis

from orchestrator.config import DEFAULT_STREAMS_PER_CLIENT, JobSettings, Settings, StoreSettings
from orchestrator.disk.atomic import write_json_atomic
from orchestrator.http.app import OPENAPI_PATH, create_app
from orchestrator.http.guesses import GUESSES_PER_MINUTE
from orchestrator.http.page import PAGE_PATHS
from orchestrator.live.progress import PROGRESS_FILE_NAME
from orchestrator.service import Orchestrator
from tests.faults.harness import FileChanges
from tests.support import (
    PYTHON,
    STEPS_JOB,
    STEPS_JOB_STEPS,
    ServiceProcess,
    job_command,
    next_status,
    sse_stream,
    start_service,
)

SEED = 20260120
"""Fixed, so a failure in CI is the same failure on a laptop."""
TOKEN = "contract-test-token"
SCHEMATHESIS_TIMEOUT = 150
"""Bound on one Schemathesis run (each takes 15-45 s here); a hang fails the test instead of the whole job."""

EVENTS_CONFIG = """
[[operations]]
include-path-regex = "/events$"
max-stream-events = 1

# A run's log answers 416 to a range or offset past its end: schema-valid numbers, but the schema cannot say how
# long a log is.
[[operations]]
include-path-regex = "/log"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "416"]
"""


def jobs_config(*names: str) -> str:
    """The jobs a path names: mostly one of ``names`` (the service's), else anything of a job name's shape. A
    cancel names the first always: it answers 409 (nothing runs) to a job the service has, and Schemathesis takes
    an operation whose other answers are all 404s for one it never reached."""
    return f"""
[dictionaries.jobs]
values = {json.dumps(list(names))}

[parameters]
"path.job" = {{ dictionary = "jobs", probability = 0.8 }}

[[operations]]
include-path-regex = "/cancel$"
parameters = {{ "path.job" = "{names[0]}" }}
"""


STRICT = """
[warnings]
# A warning here means part of the API was not reached (e.g. "rate_limited": the fuzzing only saw 429s).
fail-on = true
"""

OPEN_CONFIG = (
    jobs_config("snapshot")
    + EVENTS_CONFIG
    + """
# Each job's operations are the default job's handlers, fuzzed here at /api/snapshot/...: a few cases each
# (the service of several jobs fuzzes them more).
[[operations]]
include-path-regex = "^/api/jobs/[{]job[}]/"
generation.max-examples = 10
"""
    + STRICT
)

JOBS = ("main", "report", "nightly")
JOBS_FILE = """
default-job = "main"

[jobs.main]
command = "true"
interval = 600

[jobs.nightly]
command = "true"
cron = "0 3 * * *"
timezone = "Europe/Berlin"

[jobs.report]
command = "true"
after = ["main"]
"""
JOBS_CONFIG = jobs_config(*JOBS) + EVENTS_CONFIG + STRICT

GUARDED_CONFIG = (
    jobs_config("snapshot")
    + EVENTS_CONFIG
    + f"""
# Triggers (the default job's and any job's) carry the token, so they pass the guard and meet the rate limit
# (429, one limit for all); every other /api request has none (401).
[[operations]]
include-path-regex = "/trigger$"
headers = {{ Authorization = "Bearer {TOKEN}" }}
"""
)


def operations() -> list[dict[str, Any]]:
    """Every operation of the document (each path's methods), so the counts below follow the document."""
    document = json.loads(OPENAPI_PATH.read_text())
    return [op for item in document["paths"].values() for op in item.values()]


TRIGGER_LIMITED = "#/components/responses/TooMany"


def guarded_operation_count() -> int:
    """Operations a guarded service answers with 401/403 only: those that document a 401, except the one its
    trigger limit answers with 429 first. (Every 401 comes with a 429 for a client that keeps guessing, and a
    stream's 429 needs one address's streams open first; the fuzzing meets neither.)"""
    return sum(
        1
        for op in operations()
        if "401" in op["responses"] and op["responses"].get("429", {}).get("$ref") != TRIGGER_LIMITED
    )


def schemathesis_command(url: str, config: Path, max_examples: int) -> list[str]:
    return [
        PYTHON,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        str(OPENAPI_PATH),
        "--url",
        url,
        "--checks",
        "all",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--request-timeout",
        "5",
        "--workers",
        "1",
        "--no-color",
    ]


def run_schemathesis(service: ServiceProcess, workdir: Path, config_text: str, max_examples: int) -> str:
    """Run the Schemathesis CLI against ``service``; its whole output if it passed, else fail showing it."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "schemathesis.toml"
    config.write_text(config_text)
    command = schemathesis_command(service.url, config, max_examples)
    try:
        result = subprocess.run(
            command,
            cwd=workdir,  # its .hypothesis/ and reports stay out of the checkout
            capture_output=True,
            text=True,
            timeout=SCHEMATHESIS_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"Schemathesis did not finish within {SCHEMATHESIS_TIMEOUT}s\n{exc.stdout}\n{service.logs()}")
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(
            f"Schemathesis found the service breaking its API document (exit {result.returncode}).\n"
            f"$ {shlex.join(command)}\n\n{output}\n--- service log ---\n{service.logs()}",
            pytrace=False,
        )
    return output


def status_of(service: ServiceProcess, method: str, path: str, headers: dict[str, str] | None = None) -> int:
    return requests.request(method, service.url + path, headers=headers, timeout=10).status_code


@pytest.fixture(scope="module")
def open_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One open service for the module's tests (each start costs ~1 s). No trigger limit: with one, most
    generated triggers would meet the 429 before their body is even read."""
    root = tmp_path_factory.mktemp("open")
    service = start_service(root, "--command", "true", "--interval", "600", "--trigger-limit", "0")
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


def test_document_is_valid_openapi() -> None:
    """The document itself: valid against the OpenAPI 3.1 meta-schema, and every schema in it loads."""
    document = json.loads(OPENAPI_PATH.read_text())
    assert document["openapi"].startswith("3.1.")
    loaded = schemathesis.openapi.from_path(str(OPENAPI_PATH))
    loaded.validate()  # raises with the JSON path of the first problem
    operations = [result.ok() for result in loaded.get_all_operations()]  # ok() raises on a broken operation
    assert len(operations) == sum(len(item) for item in document["paths"].values())


def test_every_route_is_in_the_document_and_nothing_else(tmp_path: Path) -> None:
    """A route added to the app without a line in the document (or the reverse) fails here, before any fuzzing."""
    settings = Settings(
        job=JobSettings(triggers_dir=tmp_path / "triggers"), store=StoreSettings(data_dir=tmp_path / "data")
    )
    app = create_app(Orchestrator(settings))
    page = app[PAGE_PATHS]
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None and route.resource.canonical not in page
    }
    document = json.loads(OPENAPI_PATH.read_text())
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served == documented


@pytest.mark.process
def test_served_document_is_the_file_in_the_repository(open_service: ServiceProcess) -> None:
    with urllib.request.urlopen(open_service.url + "/api/openapi.json", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.read() == OPENAPI_PATH.read_bytes()


@pytest.mark.process
def test_answers_schemathesis_does_not_provoke_are_documented(open_service: ServiceProcess) -> None:
    """A body over the cap (413), a cross-site request or a foreign Host (403), an unknown path (404), a wrong
    method (405), one stream more than one address may hold (429):
    JSON errors as documented."""
    loaded = schemathesis.openapi.from_path(str(OPENAPI_PATH))
    trigger = loaded["/api/snapshot/trigger"]["POST"]
    too_big = requests.post(f"{open_service.url}/api/snapshot/trigger", data=b"x" * (17 * 1024), timeout=10)
    assert too_big.status_code == 413
    trigger.validate_response(too_big)  # raises if the answer breaks the document
    cross_site = requests.post(
        f"{open_service.url}/api/snapshot/trigger", headers={"Origin": "https://elsewhere.example"}, timeout=10
    )
    assert cross_site.status_code == 403
    trigger.validate_response(cross_site)
    rebound = requests.get(f"{open_service.url}/api/snapshot/status", headers={"Host": "evil.example"}, timeout=10)
    assert rebound.status_code == 403
    loaded["/api/snapshot/status"]["GET"].validate_response(rebound)

    for method, path, expected in (("GET", "/api/nothing-here", 404), ("DELETE", "/api/snapshot/status", 405)):
        answer = requests.request(method, open_service.url + path, timeout=10)
        assert answer.status_code == expected, (method, path, answer.status_code, answer.text)
        assert answer.headers["Content-Type"].startswith("application/json")
        body = answer.json()
        assert body["success"] is False and isinstance(body["message"], str) and body["message"], body
    assert set(answer.headers["Allow"].split(",")) == {"GET", "HEAD"}

    events_url = f"{open_service.url}/api/snapshot/events"
    held = [requests.get(events_url, stream=True, timeout=10) for _ in range(DEFAULT_STREAMS_PER_CLIENT)]
    try:
        assert {stream.status_code for stream in held} == {200}
        one_more = requests.get(events_url, stream=True, timeout=10)
        assert one_more.status_code == 429, one_more.text
        assert one_more.headers["Retry-After"] == "10"
        loaded["/api/snapshot/events"]["GET"].validate_response(one_more)
    finally:
        for stream in held:
            stream.close()


@pytest.mark.process
async def test_progress_file_with_an_out_of_range_time_keeps_the_contract(service_factory: Any) -> None:
    """A progress file is written by the job: whatever it says, the API answers as documented and lives on.

    "9999-12-31T23:59:59-05:00" is a valid ISO time that cannot be expressed in UTC (year 10000)."""
    service = service_factory("--command", "true", "--interval", "600")
    lying = {"status": "completed", "step": "lying clock", "progress": 100, "startedAt": "9999-12-31T23:59:59-05:00"}
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        # After the start-up run's own last write has landed (it is published before it is on disk), so that it
        # cannot replace ours.
        done = await next_status(events, lambda doc: doc["lastRun"] is not None and not doc["running"])
        progress_path = service.data_dir / PROGRESS_FILE_NAME
        landed = FileChanges(progress_path)
        try:
            await landed.until(
                lambda: (
                    _on_disk(progress_path).get("runId") == done["lastRun"]["runId"]
                    and _on_disk(progress_path).get("status") == "completed"
                ),
                "outcome of the start-up run",
            )
        finally:
            landed.close()
        write_json_atomic(progress_path, lying)
        # With the bug the service stops instead: the stream ends (or has not yet ended) without this event.
        await next_status(events, lambda doc: doc["progress"]["step"] == "lying clock", timeout=5)
    answer = await asyncio.to_thread(requests.get, service.url + "/api/snapshot/progress", timeout=10)
    assert answer.status_code == 200, service.logs()
    schemathesis.openapi.from_path(str(OPENAPI_PATH))["/api/snapshot/progress"]["GET"].validate_response(answer)


@pytest.mark.process
async def test_a_runs_steps_and_the_step_figures_keep_the_contract(service_factory: Any) -> None:
    """The fuzzing meets runs without steps (its service's job reports none): here a job that reports some."""
    service = service_factory("--command", job_command(STEPS_JOB), "--interval", "600")
    async with aiohttp.ClientSession() as session:
        events = sse_stream(session, service.url + "/api/snapshot/events")
        done = await next_status(events, lambda doc: doc["lastRun"] is not None and not doc["running"])
    assert done["lastRun"]["status"] == "completed", service.logs()
    run_id = done["lastRun"]["runId"]
    loaded = schemathesis.openapi.from_path(str(OPENAPI_PATH))
    for template, path in (
        ("/api/snapshot/runs/{runId}/steps", f"/api/snapshot/runs/{run_id}/steps"),
        ("/api/snapshot/steps", "/api/snapshot/steps"),
    ):
        answer = await asyncio.to_thread(requests.get, service.url + path, timeout=10)
        assert answer.status_code == 200, answer.text
        loaded[template]["GET"].validate_response(answer)
        assert [step["name"] for step in answer.json()["steps"]] == STEPS_JOB_STEPS, answer.text


@pytest.mark.process
def test_refused_guesses_get_a_documented_429_on_every_guarded_operation(tmp_path: Path) -> None:
    """A client that keeps sending wrong tokens gets 429 on whatever it asks next, a read under
    --token-for-reads as much as a change: every operation that can answer 401 documents that 429 too."""
    service = start_service(
        tmp_path / "guessed", "--command", "true", "--interval", "600", "--token", TOKEN, "--token-for-reads"
    )
    try:
        service.wait_ready()
        wrong = {"Authorization": "Bearer not-the-token"}
        for _ in range(GUESSES_PER_MINUTE):
            assert status_of(service, "GET", "/api/snapshot/status", wrong) == 401
        loaded = schemathesis.openapi.from_path(str(OPENAPI_PATH))
        guarded = [
            (method, path, op)
            for path, item in json.loads(OPENAPI_PATH.read_text())["paths"].items()
            for method, op in item.items()
            if "401" in op["responses"]
        ]
        assert len(guarded) >= 10, guarded
        for method, path, op in guarded:
            concrete = path.replace("{runId}", "20260101T000000Z-abcdef").replace("{job}", "snapshot")
            answer = requests.request(method, service.url + concrete, headers=wrong, timeout=10)
            assert answer.status_code == 429, (method, path, answer.status_code, answer.text)
            # validate_response checks an answer against what its status documents, and lets an undocumented
            # status through: that is Schemathesis' status_code_conformance check, so it is asked here.
            assert "429" in op["responses"], f"{method.upper()} {path} does not document its 429"
            assert int(answer.headers["Retry-After"]) >= 1
            loaded[path][method.upper()].validate_response(answer)
    finally:
        service.stop()


@pytest.mark.process
def test_schemathesis_finds_no_contract_violation(open_service: ServiceProcess, tmp_path: Path) -> None:
    """No generated request (valid or not) gets a 5xx or an answer the document does not allow."""
    output = run_schemathesis(open_service, tmp_path / "st-open", OPEN_CONFIG, max_examples=75)
    # It did test: every operation, and no phase errored (an error is not a failure, but hides one).
    assert f"Tested: {len(operations())}" in output, output
    assert "errored" not in output, output
    assert open_service.proc.poll() is None, open_service.logs()


@pytest.mark.process
def test_a_service_of_several_jobs_keeps_to_the_contract(tmp_path: Path) -> None:
    """Every job's operations, ``/api/jobs``, every job's runs and events, and a reload (of the same file), on a
    service with a jobs file: as the document says."""
    root = tmp_path / "jobs"
    root.mkdir()
    (root / "jobs.toml").write_text(JOBS_FILE)
    service = start_service(root, "--jobs", str(root / "jobs.toml"), "--trigger-limit", "0")
    try:
        service.wait_ready()
        listed = service.get_json("/api/jobs")
        assert ([doc["job"] for doc in listed["jobs"]], listed["defaultJob"]) == (["main", "nightly", "report"], "main")
        output = run_schemathesis(service, tmp_path / "st-jobs", JOBS_CONFIG, max_examples=40)
        assert f"Tested: {len(operations())}" in output, output
        assert "errored" not in output, output
        assert service.proc.poll() is None, service.logs()
    finally:
        service.stop()


@pytest.mark.process
def test_guarded_service_keeps_to_the_contract(tmp_path: Path) -> None:
    """With a token: reads without it get the documented 401, triggers past the limit the documented 429."""
    service = start_service(
        tmp_path / "guarded",
        "--command",
        "true",
        "--interval",
        "600",
        "--token",
        TOKEN,
        "--token-for-reads",
        "--trigger-limit",
        "1",
    )
    try:
        service.wait_ready()
        output = run_schemathesis(service, tmp_path / "st-guarded", GUARDED_CONFIG, max_examples=15)
        assert f"Tested: {len(operations())}" in output, output
        # The answers checked against the document were really the guarded ones (Schemathesis says so in its
        # warnings): 401 for the reads under /api and for cancel, 429 for the triggers.
        assert f"{guarded_operation_count()} operations returned only 401/403 responses" in output, output
        assert "Rate limited: 2 operations" in output, output
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert status_of(service, "GET", "/api/snapshot/status") == 401
        assert status_of(service, "GET", "/api/snapshot/status", auth) == 200
        assert status_of(service, "GET", "/health") == 200  # outside /api: always open
        assert service.proc.poll() is None, service.logs()
    finally:
        service.stop()


def _on_disk(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}
