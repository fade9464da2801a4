"""axe-core for the browser tests: the ``axe_source`` fixture (registered by tests/web/conftest.py) and
``run_axe``, which checks a Playwright page.

axe-core comes from the npm registry through ``scripts/fetch-axe`` (pinned and verified; ``./scripts/test``
runs it) into ``.cache/``. Without it the checks skip, except under ``CI=true``, where they fail.

The service's pages forbid inline scripts (``Content-Security-Policy: script-src 'self'``), so axe is not
injected with a ``<script>`` element (``page.add_script_tag(content=...)`` is refused): ``page.evaluate``
runs it through the DevTools protocol, which the page's policy does not govern, in the page's own world,
where ``axe.run`` sees the page's DOM, open shadow roots included.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import pytest

from tests.support import REPO

if TYPE_CHECKING:
    from playwright.sync_api import Page

FETCH_AXE = REPO / "scripts" / "fetch-axe"
SEVERE = ("serious", "critical")


class AxeViolation(TypedDict):
    """One rule the page breaks: axe's rule id, its impact, what it asks for, and the elements that break it
    (a CSS selector each; `` >> `` crosses into a shadow root or a frame)."""

    id: str
    impact: str
    help: str
    targets: list[str]


def axe_version() -> str:
    """The version scripts/fetch-axe pins (one place to change it)."""
    found = re.search(r'^AXE_VERSION = "([^"]+)"$', FETCH_AXE.read_text(), re.MULTILINE)
    assert found, f"no AXE_VERSION in {FETCH_AXE}"
    return found.group(1)


def axe_path() -> Path:
    version = axe_version()
    return REPO / ".cache" / "axe-core" / version / "axe.min.js"


@functools.cache
def _read_axe() -> str | None:
    path = axe_path()
    return path.read_text(encoding="utf-8") if path.is_file() else None


def load_axe_source() -> str:
    """axe.min.js as text; skips the test without it (fails under ``CI=true``)."""
    source = _read_axe()
    if source is None:
        why = f"{axe_path().relative_to(REPO)} is missing (run scripts/fetch-axe)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"the accessibility checks cannot run in CI: {why}", pytrace=False)
        pytest.skip(why)
    return source


@pytest.fixture(scope="session")
def axe_source() -> str:
    """The text of axe-core's ``axe.min.js`` (see ``load_axe_source``)."""
    return load_axe_source()


def _target_text(target: Any) -> str:
    """axe's target of a node: a selector, or a list of them, one per shadow root or frame on the way."""
    if isinstance(target, list):
        return " >> ".join(_target_text(part) for part in target)
    return str(target)


def run_axe(page: Page, include: str | list[str] | None = None) -> list[AxeViolation]:
    """The serious and critical violations axe-core finds in ``page`` (within the elements matching
    ``include``, a selector or a list of them, if given)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(load_axe_source())
    context = {"include": [include] if isinstance(include, str) else include} if include else None
    results = page.evaluate(
        """async (context) => {
            const results = await window.axe.run(context || document, { resultTypes: ["violations"] });
            return results.violations;
        }""",
        context,
    )
    return [
        AxeViolation(
            id=violation["id"],
            impact=violation["impact"],
            help=violation["help"],
            targets=[_target_text(node["target"]) for node in violation["nodes"]],
        )
        for violation in results
        if violation.get("impact") in SEVERE
    ]
