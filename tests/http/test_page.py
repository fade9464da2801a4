"""The page's files for other origins: plain URLs that revalidate, versioned URLs cached for a year, the
generated ``/snapshot-bar.js`` entry module, JavaScript served as JavaScript, and the CORS headers a module
script from another origin needs (on the page's files, never on the API). Over real HTTP (aiohttp's test
server) with a page folder of the test's own."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from orchestrator.http.app import create_app
from orchestrator.http.page import PAGE_VERSION, entry_module, page_version
from orchestrator.service import Orchestrator
from tests.fakes import Client

IMMUTABLE = "public, max-age=31536000, immutable"
BAR = 'import "./lib/clock.js";\ncustomElements.define("snapshot-bar", class extends HTMLElement {});\n'


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    root = tmp_path / "web"
    (root / "lib").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>test page</title>")
    (root / "snapshot-bar.js").write_text(BAR)
    (root / "lib" / "clock.js").write_text("export const now = () => Date.now(); // é\n")
    (root / "style.css").write_text("body { margin: 0 }")
    return root


@pytest.fixture
async def page(
    unstarted_service: Orchestrator,
    web_dir: Path,
    aiohttp_client: Callable[[aiohttp.web.Application], Awaitable[Client]],
) -> Client:
    return await aiohttp_client(create_app(unstarted_service, web_dir=web_dir))


def version_of(page: Client) -> str:
    return page.app[PAGE_VERSION]


def test_the_version_is_a_digest_of_every_path_and_content(web_dir: Path) -> None:
    files = ["index.html", "lib/clock.js", "snapshot-bar.js", "style.css"]
    first = page_version(web_dir, files)
    assert len(first) == 12 and int(first, 16) >= 0
    assert page_version(web_dir, list(reversed(files))) == first  # the order found does not matter
    (web_dir / "style.css").write_text("body { margin: 1px }")
    assert page_version(web_dir, files) != first
    (web_dir / "lib" / "clock.js").rename(web_dir / "lib" / "clock2.js")
    renamed = ["index.html", "lib/clock2.js", "snapshot-bar.js", "style.css"]
    assert page_version(web_dir, renamed) not in (first, page_version(web_dir, files))
    assert page_version(web_dir, []) == hashlib.sha256().hexdigest()[:12]


async def test_plain_urls_revalidate_and_answer_304(page: Client) -> None:
    first = await page.get("/lib/clock.js")
    assert first.status == 200
    assert first.headers["Cache-Control"] == "no-cache"
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    again = await page.get("/lib/clock.js", headers={"If-None-Match": etag})
    assert again.status == 304 and await again.read() == b""
    since = await page.get("/lib/clock.js", headers={"If-Modified-Since": modified})
    assert since.status == 304


async def test_versioned_urls_are_cached_for_a_year(page: Client) -> None:
    version = version_of(page)
    for path, expected in (("lib/clock.js", "export const now"), ("style.css", "margin"), ("snapshot-bar.js", BAR)):
        response = await page.get(f"/v/{version}/{path}")
        assert response.status == 200, path
        assert response.headers["Cache-Control"] == IMMUTABLE
        assert expected in await response.text()


@pytest.mark.parametrize("version", ["000000000000", "latest", ""])
async def test_an_unknown_version_is_a_json_404(page: Client, version: str) -> None:
    response = await page.get(f"/v/{version}/lib/clock.js")
    assert response.status == 404
    assert (await response.json())["success"] is False


async def test_javascript_is_served_as_javascript(page: Client) -> None:
    version = version_of(page)
    for path in ("/lib/clock.js", f"/v/{version}/lib/clock.js", "/snapshot-bar.js", f"/v/{version}/snapshot-bar.js"):
        response = await page.get(path)
        assert response.headers["Content-Type"] == "text/javascript; charset=utf-8", path
    assert (await page.get("/style.css")).headers["Content-Type"] == "text/css; charset=utf-8"


async def test_the_entry_module_imports_the_versioned_file(page: Client) -> None:
    version = version_of(page)
    response = await page.get("/snapshot-bar.js", headers={"Origin": "https://dash.example.com"})
    assert response.status == 200
    expected = f'import "./v/{version}/lib/clock.js";\nexport * from "./v/{version}/snapshot-bar.js";\n'
    assert await response.text() == entry_module(version, needs=["lib/clock.js"]) == expected
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["ETag"] == f'"{version}"'
    again = await page.get("/snapshot-bar.js", headers={"If-None-Match": f'"{version}"'})
    assert again.status == 304 and await again.read() == b""
    other = await page.get("/snapshot-bar.js", headers={"If-None-Match": '"0123456789ab"'})
    assert other.status == 200


async def test_the_page_files_may_be_loaded_by_any_origin_and_the_api_may_not(page: Client) -> None:
    version = version_of(page)
    origin = {"Origin": "https://dash.example.com"}
    for path in ("/", "/snapshot-bar.js", "/lib/clock.js", f"/v/{version}/snapshot-bar.js"):
        response = await page.get(path, headers=origin)
        assert response.headers["Access-Control-Allow-Origin"] == "*", path
        assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin", path
        assert "Access-Control-Allow-Credentials" not in response.headers, path
    for path in ("/api/snapshot/status", "/health"):
        response = await page.get(path, headers=origin)
        assert "Access-Control-Allow-Origin" not in response.headers, path


async def test_every_element_module_at_the_top_is_an_entry(
    unstarted_service: Orchestrator,
    web_dir: Path,
    aiohttp_client: Callable[[aiohttp.web.Application], Awaitable[Client]],
) -> None:
    (web_dir / "snapshot-log.js").write_text("export const log = 1;\n")
    (web_dir / "lib" / "snapshot-inner.js").write_text("export const inner = 1;\n")
    page = await aiohttp_client(create_app(unstarted_service, web_dir=web_dir))
    version = version_of(page)
    assert await (await page.get("/snapshot-log.js")).text() == entry_module(version, "snapshot-log.js")
    assert await (await page.get(f"/v/{version}/snapshot-log.js")).text() == "export const log = 1;\n"
    assert await (await page.get("/lib/snapshot-inner.js")).text() == "export const inner = 1;\n"  # not at the top
