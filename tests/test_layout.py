"""The package's shape: rooms small enough to read. No module over 350 lines, no class over 200, no function
over 60; the README's map names every room and every module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support import REPO

PACKAGE = REPO / "orchestrator"
MAX_MODULE_LINES = 350
MAX_CLASS_LINES = 200
MAX_FUNCTION_LINES = 60


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def too_long() -> list[str]:
    found = []
    for path in modules():
        name = path.relative_to(PACKAGE).as_posix()
        source = path.read_text(encoding="utf-8")
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            size = (node.end_lineno or node.lineno) - node.lineno + 1 if hasattr(node, "lineno") else 0
            if isinstance(node, ast.ClassDef) and size > MAX_CLASS_LINES:
                found.append(f"{name}: class {node.name}: {size} lines")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and size > MAX_FUNCTION_LINES:
                found.append(f"{name}: {node.name}(): {size} lines")
    return found


def test_no_module_class_or_function_is_too_long_to_read() -> None:
    assert too_long() == []


def test_the_readme_map_names_every_room_and_module() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    map_text = readme[readme.index("## Development") :]
    rooms = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert rooms, "no rooms found"
    assert [room for room in rooms if f"  {room}/" not in map_text] == []
    named = set(re.findall(r"[a-z_]+\.py", map_text))
    unnamed = [p.relative_to(PACKAGE).as_posix() for p in modules() if p.name != "__init__.py" and p.name not in named]
    assert unnamed == []


WEB = REPO / "web"
MAX_WEB_MODULE_LINES = 400


def web_modules() -> list[Path]:
    return sorted(WEB.rglob("*.js"))


def test_the_pages_modules_are_small_and_leave_the_host_page_alone() -> None:
    """The page's ES modules: none over 400 lines; none writes on the host page's ``document.body`` or
    ``document.documentElement`` (an element keeps to its own shadow root and its own attributes); the README
    names each of them."""
    assert len(web_modules()) >= 10, web_modules()
    long = [f"{p.relative_to(WEB)}: {n}" for p in web_modules() if (n := len(p.read_text().splitlines())) > 400]
    assert long == []
    touching = re.compile(r"document\.(body|documentElement)\b")
    assert [p.relative_to(WEB).as_posix() for p in web_modules() if touching.search(p.read_text())] == []
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert [p.name for p in web_modules() if p.name not in readme] == []
