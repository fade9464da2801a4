"""Which of the page's modules an element module needs, read from their static imports, so that its generated
entry can name them all at once: a browser then fetches them side by side instead of one level of imports at
a time (four round trips deep for the bar, over a cold cache).

Only what the page's own modules write is understood: static ``import ... from "./x.js"``, ``import
"./x.js"`` and ``export ... from "./x.js"`` with relative specifiers. Anything else (a dynamic ``import()``, a
bare name) is left to the browser, which still finds it the usual way. Pure: texts in, paths out.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

STATIC_IMPORT = re.compile(
    r"""(?:^|[;\n])\s*(?:import|export)\b[^;'"`]*?\bfrom\s*(["'])(\.{1,2}/[^"'\n]+)\1"""
    r"""|(?:^|[;\n])\s*import\s*(["'])(\.{1,2}/[^"'\n]+)\3""",
)


def relative_imports(text: str) -> list[str]:
    """The relative specifiers ``text`` imports statically, in order, each once."""
    found: list[str] = []
    for match in STATIC_IMPORT.finditer(text):
        specifier = match.group(2) or match.group(4)
        if specifier not in found:
            found.append(specifier)
    return found


def dependencies(entry: str, read: Callable[[str], str | None]) -> list[str]:
    """Every page path ``entry`` (a path like ``snapshot-bar.js``) imports, directly or not, depth first;
    ``read(path)`` gives a module's text, or ``None`` when the page has no such file (then it is skipped)."""
    seen: list[str] = []

    def visit(path: str, text: str) -> None:
        folder = posixpath.dirname(path)
        for specifier in relative_imports(text):
            target = posixpath.normpath(posixpath.join(folder, specifier))
            if target.startswith("../") or target in seen or target == entry:
                continue
            found = read(target)
            if found is not None:
                seen.append(target)
                visit(target, found)

    text = read(entry)
    if text is not None:
        visit(entry, text)
    return seen
