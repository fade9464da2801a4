"""The browser tests' fixtures: Chromium and its pages, and a job's gate (tests/web/browsing.py), and axe-core
(tests/web/axe.py)."""

from tests.web.axe import axe_source
from tests.web.browsing import browser, gate, open_page

__all__ = ["axe_source", "browser", "gate", "open_page"]
