"""The page: one route per file of ``web/`` (the top bar and its scripts), found at start, each checked again
when it is served, so nothing outside the page's folder can be reached through it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from aiohttp import web

from orchestrator.http.errors import Handler

WEB_DIR = web.AppKey("web_dir", Path)
PAGE_FILE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
"""Names the page's files may have: no dot-files, nothing a URL or a route pattern would need to escape."""


def web_root() -> Path:
    """The page's folder: inside the installed package (wheel), else ``web/`` beside the package (checkout)."""
    packaged = resources.files("orchestrator") / "web"
    if isinstance(packaged, Path) and (packaged / "index.html").is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "web"


def add_page(app: web.Application, root: Path) -> None:
    """One route per file of the page, found now: anything else (``..``, encoded dots, folders) is simply not
    a route, so it is a 404 by construction; a file is also checked again when served (see ``_serve``)."""
    root = root.resolve()
    app[WEB_DIR] = root
    app.router.add_get("/", _file_handler("index.html"))
    for relative in page_files(root):
        app.router.add_get("/" + relative, _file_handler(relative))


def page_files(root: Path) -> Iterator[str]:
    """The page's files under ``root`` as ``a/b.js``: regular files, or symlinks to files inside ``root``."""
    for folder, dirs, files in os.walk(root):  # never into symlinked folders (followlinks=False)
        dirs[:] = sorted(d for d in dirs if PAGE_FILE_NAME.match(d))
        for name in sorted(files):
            path = Path(folder, name)
            if PAGE_FILE_NAME.match(name) and _inside(root, path) is not None:
                yield path.relative_to(root).as_posix()


def _inside(root: Path, path: Path) -> Path | None:
    """``path`` resolved, if it is a regular file inside ``root`` (a symlink may point within ``root`` only)."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # gone, or a symlink loop
        return None
    return real if real.is_relative_to(root) and real.is_file() else None


def _file_handler(relative: str) -> Handler:
    async def serve(request: web.Request) -> web.StreamResponse:
        # Checked again per request: the file may have been replaced by a symlink since the start. (Whoever
        # can write the page's folder could change the page anyway; this keeps the rest of the disk out.)
        root = request.app[WEB_DIR]
        real = _inside(root, root / relative)
        if real is None:
            raise web.HTTPNotFound()
        return web.FileResponse(real, headers={"Cache-Control": "no-cache"})

    return serve
