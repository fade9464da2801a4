"""The page: one route per file of ``web/`` (the top bar and its scripts), found at start, each checked again
when it is served, so nothing outside the page's folder can be reached through it.

Every file is served twice:

- at ``/<path>``, with ``Cache-Control: no-cache``: a browser revalidates it each time (``ETag`` and
  ``Last-Modified`` answer a ``304``), so an edited page shows at once;
- at ``/v/<version>/<path>``, cacheable for a year (``immutable``): ``<version>`` is a digest of every file of
  the page taken at start (:func:`page_version`), so a changed page is a new URL after a restart, and an old
  version's URL is a 404. Modules that import each other relatively stay within one version.

The element modules (``/snapshot-bar.js`` and every other ``snapshot-*.js`` at the top of the folder) are not
the files at their plain URL: each is a module generated here, ``export * from
"./v/<version>/snapshot-bar.js";`` after one ``import`` of each module it needs (modulegraph.py, so a browser
fetches them side by side rather than one level of imports at a time), revalidated each time. Another page
includes the bar with that stable URL and its browser fetches the rest once per version. A module resolves the
relative specifier against its own URL, so it names this service whatever page includes it. And every element,
however it is reached, runs from the one versioned tree: a browser keys modules by URL, so a page that imported
one element through its entry and another by its plain URL would load (and run) each shared module twice, once
per tree.

The page's files hold no secret, so another origin may load them: every static answer says
``Access-Control-Allow-Origin: *`` (a module script loads in CORS mode, without credentials) and
``Cross-Origin-Resource-Policy: cross-origin``. The API's CORS is the guard's (``--allow-origin``).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

from aiohttp import web

from orchestrator.http.errors import Handler

WEB_DIR = web.AppKey("web_dir", Path)
PAGE_VERSION = web.AppKey("page_version", str)
PAGE_PATHS = web.AppKey("page_paths", frozenset[str])
"""Every path the page is served at (the API contract leaves them out: orchestrator/http/openapi.json)."""
PAGE_FILE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
"""Names the page's files may have: no dot-files, nothing a URL or a route pattern would need to escape."""
VERSION_HEX_DIGITS = 12
ENTRY_MODULE = re.compile(r"^snapshot-[a-z0-9-]+\.js$")
"""The element modules another page includes (``snapshot-bar.js``, ...): each served at its plain URL as a
generated one-liner that imports the versioned file."""
NO_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"
CROSS_ORIGIN = {"Access-Control-Allow-Origin": "*", "Cross-Origin-Resource-Policy": "cross-origin"}
CONTENT_TYPES = {
    # ES modules need a JavaScript MIME type; the charset keeps a module's non-ASCII text right everywhere.
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
}


def web_root() -> Path:
    """The page's folder: inside the installed package (wheel), else ``web/`` beside the package (checkout)."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "web"
    if (packaged / "index.html").is_file():
        return packaged
    return package.parent / "web"


def add_page(app: web.Application, root: Path) -> None:
    """One route per file of the page (twice: plain and versioned), found now: anything else (``..``, encoded
    dots, folders, another version) is simply not a route, so it is a 404 by construction; a file is also
    checked again when served (see ``_file_handler``)."""
    root = root.resolve()
    files = list(page_files(root))
    version = page_version(root, files)
    app[WEB_DIR] = root
    app[PAGE_VERSION] = version
    paths = {"/"}
    app.router.add_get("/", _file_handler("index.html", NO_CACHE))
    for relative in files:
        plain, versioned = "/" + relative, f"/v/{version}/{relative}"
        if ENTRY_MODULE.match(relative):  # at the top only: no folder in the name
            needs = partial(_dependencies, relative, partial(_module_text, root, frozenset(files)))
            app.router.add_get(plain, _entry_handler(partial(entry_module, version, relative), needs, version))
        else:
            app.router.add_get(plain, _file_handler(relative, NO_CACHE))
        app.router.add_get(versioned, _file_handler(relative, IMMUTABLE))
        paths |= {plain, versioned}
    app[PAGE_PATHS] = frozenset(paths)


def page_files(root: Path) -> Iterator[str]:
    """The page's files under ``root`` as ``a/b.js``: regular files, or symlinks to files inside ``root``."""
    for folder, dirs, files in os.walk(root):  # never into symlinked folders (followlinks=False)
        dirs[:] = sorted(d for d in dirs if PAGE_FILE_NAME.match(d))
        for name in sorted(files):
            path = Path(folder, name)
            if PAGE_FILE_NAME.match(name) and _found(root, path):
                yield path.relative_to(root).as_posix()


def _found(root: Path, path: Path) -> bool:
    """A regular file met by the walk (which follows no symlink) is inside ``root``; a symlink is resolved."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    if stat.S_ISREG(mode):
        return True
    return stat.S_ISLNK(mode) and _inside(root, path) is not None


def page_version(root: Path, files: list[str]) -> str:
    """The first :data:`VERSION_HEX_DIGITS` hex digits of a SHA-256 over every file's path and content, in
    path order: any change to the page is a new version. A file that cannot be read counts as empty."""
    digest = hashlib.sha256()
    for relative in sorted(files):
        try:
            content = (root / relative).read_bytes()
        except OSError:
            content = b""
        name = relative.encode()
        # Lengths first: no two different pages hash the same bytes (a name that ends where content begins).
        digest.update(b"%d:%s%d:" % (len(name), name, len(content)))
        digest.update(content)
    return digest.hexdigest()[:VERSION_HEX_DIGITS]


def entry_module(version: str, name: str = "snapshot-bar.js", needs: Sequence[str] = ()) -> str:
    """The text of the generated ``/<name>`` (an element module at the top of the page's folder): an import of
    each module it ``needs`` (modulegraph.py), so a browser fetches them all at once, then the module itself."""
    preload = "".join(f'import "./v/{version}/{path}";\n' for path in needs)
    return f'{preload}export * from "./v/{version}/{name}";\n'


def _inside(root: Path, path: Path) -> Path | None:
    """``path`` resolved, if it is a regular file inside ``root`` (a symlink may point within ``root`` only)."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # gone, or a symlink loop
        return None
    return real if real.is_relative_to(root) and real.is_file() else None


def _file_handler(relative: str, cache: str) -> Handler:
    headers = {"Cache-Control": cache, **CROSS_ORIGIN}
    content_type = CONTENT_TYPES.get(Path(relative).suffix.lower())
    if content_type is not None:
        headers["Content-Type"] = content_type  # FileResponse guesses only where none is set

    async def serve(request: web.Request) -> web.StreamResponse:
        # Checked again per request: the file may have been replaced by a symlink since the start. (Whoever
        # can write the page's folder could change the page anyway; this keeps the rest of the disk out.)
        root = request.app[WEB_DIR]
        real = _inside(root, root / relative)
        if real is None:
            raise web.HTTPNotFound()
        return web.FileResponse(real, headers=headers)

    return serve


def _dependencies(entry: str, read: Callable[[str], str | None]) -> list[str]:
    from orchestrator.http.modulegraph import dependencies  # at the entry's first request, not at every start

    return dependencies(entry, read)


def _module_text(root: Path, files: frozenset[str], path: str) -> str | None:
    if path not in files:
        return None
    try:
        return (root / path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _entry_handler(text: Callable[[Sequence[str]], str], needs: Callable[[], list[str]], version: str) -> Handler:
    """The generated module, made at its first request (reading the modules it needs takes longer than the
    rest of the start), the same for every later one."""
    made: list[bytes] = []
    etag = f'"{version}"'
    headers = {"Cache-Control": NO_CACHE, "ETag": etag, **CROSS_ORIGIN}

    async def serve(request: web.Request) -> web.StreamResponse:
        tags = {tag.strip().removeprefix("W/") for tag in request.headers.get("If-None-Match", "").split(",")}
        if etag in tags or "*" in tags:
            return web.Response(status=304, headers=headers)
        if not made:
            made.append(text(needs()).encode())
        return web.Response(body=made[0], headers={**headers, "Content-Type": CONTENT_TYPES[".js"]})

    return serve
