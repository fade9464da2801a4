"""The browser tests' fixtures (tests/web/browsing.py)."""

from tests.web.browsing import browser, open_page

__all__ = ["browser", "open_page"]
