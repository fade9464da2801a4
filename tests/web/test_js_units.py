"""The pure front-end modules (``web/lib/``: formatting, server clock, backoff, the bar's view, the log buffer,
a run's timeline, the step chart, the refetching of a document) under node's own test runner.

The tests are ES modules in ``tests/web/js/`` (``node --test tests/web/js/`` runs them by hand); this file
runs them from pytest so the README's test command covers them. Needs ``node`` (Debian's ``nodejs``, 18 or
later): without it this test skips, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import NoReturn

import pytest

from tests.support import REPO

JS_TESTS = REPO / "tests" / "web" / "js"
MIN_TESTS = 700
"""Fewer leaf tests than this means files or tables were lost on the way: an empty run must not pass."""
TIMEOUT_S = 60
SUMMARY = re.compile("^\\s*(?:#|\u2139)\\s*(tests|pass|fail)\\s+(\\d+)\\s*$", re.MULTILINE)
"""node's closing count: ``# tests 209`` (TAP reporter, node 18's default) or ``\u2139 tests 209`` (spec
reporter, behind an information sign)."""


def _unavailable(why: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the node tests cannot run in CI: {why}", pytrace=False)
    pytest.skip(why)


def summary(output: str) -> dict[str, int]:
    """The counts of node's closing summary (the last one, should a test print a look-alike line)."""
    return {name: int(count) for name, count in SUMMARY.findall(output)}


@pytest.mark.process
def test_the_pure_web_modules_pass_their_node_tests() -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        _unavailable("node is not on PATH (apt-get install nodejs)")
    # The files by name rather than the folder: node 21 and later read a folder argument as a glob pattern.
    files = sorted(str(path.relative_to(REPO)) for path in JS_TESTS.glob("*.test.mjs"))
    assert files, f"no *.test.mjs in {JS_TESTS}"
    result = subprocess.run(
        [node, "--test", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, "NO_COLOR": "1", "NODE_OPTIONS": ""},
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"node --test failed (exit {result.returncode}):\n{output}"
    counts = summary(output)
    assert counts.get("fail") == 0, f"node reported failures:\n{output}"
    assert counts.get("tests", 0) >= MIN_TESTS, f"only {counts.get('tests', 0)} node tests ran:\n{output}"
    assert counts.get("pass") == counts["tests"], f"not every node test passed:\n{output}"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("ok 1 - x\n1..1\n# tests 209\n# suites 17\n# pass 209\n# fail 0\n", {"tests": 209, "pass": 209, "fail": 0}),
        (
            "\u2714 x (1ms)\n\u2139 tests 3\n\u2139 suites 1\n\u2139 pass 2\n\u2139 fail 1\n",
            {"tests": 3, "pass": 2, "fail": 1},
        ),
        ("TAP version 13\n# Subtest: a test that prints 'tests 5'\n", {}),
        ("", {}),
    ],
)
def test_the_summary_is_read_from_either_reporter(output: str, expected: dict[str, int]) -> None:
    assert summary(output) == expected
