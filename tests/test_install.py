"""The page must be served after a plain ``pip install .``, from any working directory, not only from a
checkout. Build the real wheel, install it into a fresh folder, and run the service from somewhere else."""

from __future__ import annotations

import os
import subprocess
import urllib.request
import zipfile
from pathlib import Path

from tests.support import PYTHON, REPO, free_port, sample_command, start_service


def test_wheel_carries_the_page_and_serves_it_from_anywhere(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
    )
    [wheel] = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for page_file in ("index.html", "app.js", "style.css"):
        assert f"orchestrator/web/{page_file}" in names
    assert "orchestrator/openapi.json" in names
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
        with urllib.request.urlopen(service.url + "/app.js", timeout=10) as response:
            assert b"EventSource" in response.read()
        with urllib.request.urlopen(service.url + "/api/openapi.json", timeout=10) as response:
            assert response.read() == (REPO / "orchestrator" / "openapi.json").read_bytes()
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
