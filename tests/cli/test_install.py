"""The page must be served after a plain ``pip install .``, from any working directory, not only from a
checkout. Build the real wheel, install it into a fresh folder, and run the service from somewhere else."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.support import PYTHON, REPO, free_port, sample_command, start_service


@pytest.mark.process
def test_wheel_carries_the_page_and_serves_it_from_anywhere(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
    )
    [wheel] = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    elements = ("snapshot-bar.js", "snapshot-steps.js", "snapshot-step-chart.js")
    for page_file in ("index.html", "page.js", "style.css", *elements, "lib/stream.js", "lib/steps-view.js"):
        assert f"orchestrator/web/{page_file}" in names
    assert "orchestrator/http/openapi.json" in names
    assert any(name.endswith("entry_points.txt") for name in names)

    site = tmp_path / "site"
    subprocess.run(
        [PYTHON, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    env = {"PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}  # the installed copy, not the checkout
    service = start_service(elsewhere, "--command", sample_command(0.1), env=env, port=free_port())
    try:
        service.wait_ready()
        with urllib.request.urlopen(service.url + "/", timeout=10) as response:
            assert b"<html" in response.read().lower()
        with urllib.request.urlopen(service.url + "/lib/connection.js", timeout=10) as response:
            assert b"new EventSource" in response.read()
        for element in ("snapshot-bar.js", "snapshot-steps.js", "snapshot-step-chart.js"):
            with urllib.request.urlopen(f"{service.url}/{element}", timeout=10) as response:
                assert b'export * from "./v/' in response.read()  # the generated entry, from the installed page
        with urllib.request.urlopen(service.url + "/api/openapi.json", timeout=10) as response:
            assert response.read() == (REPO / "orchestrator" / "http" / "openapi.json").read_bytes()
        where = subprocess.run(
            [PYTHON, "-c", "import orchestrator; print(orchestrator.__file__)"],
            env={**os.environ, **env},
            cwd=elsewhere,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert where.startswith(str(site)), where
    finally:
        service.stop()


# ------------------------------------------------------------------ the README's commands, as a new user types them
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SUBCOMMANDS = "serve|trigger|status|cancel|pause|resume|runs"


def test_the_docs_spell_the_cli_as_the_quick_start_installs_it() -> None:
    """After the quick start only ``.venv/bin/snapshot-orchestrator`` exists: a bare ``snapshot-orchestrator``
    or ``python -m orchestrator`` is "command not found" or "No module named orchestrator" for a new user."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    scripts = project["scripts"]
    assert "snapshot-orchestrator" in scripts, "the console script the docs name"
    # ./scripts/test installs the test extras: their tools (pytest, schemathesis, ...) are in .venv/bin too.
    tools = {re.split(r"[<>=\[ ;]", spec, maxsplit=1)[0] for spec in project["optional-dependencies"]["test"]}
    bare = re.compile(rf"(?<![\w./-])(snapshot-orchestrator ({SUBCOMMANDS})\b|python3? -m orchestrator\b)")
    found = [
        f"{doc.relative_to(REPO)}:{number}: {line.strip()}"
        for doc in DOCS
        for number, line in enumerate(doc.read_text().splitlines(), 1)
        if bare.search(line)
    ]
    assert not found, "\n".join(found)
    for doc in DOCS:
        for name in re.findall(r"\.venv/bin/([\w.-]+)", doc.read_text()):
            assert name in {"python", *scripts, *tools}, f"{doc.name}: the quick start installs no .venv/bin/{name}"


def test_the_quick_start_is_two_commands_and_says_the_service_stays_in_the_foreground() -> None:
    readme = (REPO / "README.md").read_text()
    quick = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    first_block = quick.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in first_block.splitlines() if line.split("#", 1)[0].strip()]
    assert commands == ["./scripts/serve", "./scripts/test"]
    assert "second terminal" in quick and "foreground" in quick


UNIT = REPO / "deploy" / "snapshot-orchestrator.service"


@pytest.mark.process
def test_the_systemd_unit_is_hardened_to_what_the_service_needs() -> None:
    """``systemd-analyze security`` rated the unit 8.7 "EXPOSED"; the aim is under 4. (Scored offline: CI
    installs Debian's systemd for the tool, but no systemd runs there to start the unit.)"""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("systemd-analyze (Debian's systemd) is needed")
        pytest.skip("no systemd-analyze here")
    done = subprocess.run(
        [tool, "security", "--offline=yes", "--no-pager", str(UNIT)], capture_output=True, text=True, check=False
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout + done.stderr)
    assert found is not None, done.stdout + done.stderr
    assert float(found[1]) < 4, found[0]
    text = UNIT.read_text()
    for needed in ("UMask=0077", "ReadWritePaths=/srv/snapshot/data /srv/snapshot/triggers", "useradd --system"):
        assert needed in text
    verified = subprocess.run([tool, "verify", str(UNIT)], capture_output=True, text=True, check=False)
    problems = [line for line in verified.stderr.splitlines() if "is not executable" not in line and line.strip()]
    assert not problems, problems  # (the unit's ExecStart exists only once installed as its comments say)
