"""Which modules an element needs, from their static imports (orchestrator/http/modulegraph.py), as tables."""

from __future__ import annotations

import pytest

from orchestrator.http.modulegraph import dependencies, relative_imports
from orchestrator.http.page import page_files, web_root


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('import { a } from "./lib/a.js";', ["./lib/a.js"]),
        ("import {\n  a,\n  b,\n} from './lib/ab.js';\nimport './side.js';", ["./lib/ab.js", "./side.js"]),
        ('export * from "./x.js"; export { y } from "../y.js";', ["./x.js", "../y.js"]),
        ('import x from "./a.js";\nimport y from "./a.js";', ["./a.js"]),  # each once
        ('import "https://elsewhere.example/x.js"; import { z } from "z";', []),  # not relative: the browser's
        ('const m = await import("./lazy.js");', []),  # dynamic: the browser's
        ('// a line that starts as a comment: import { a } from "./comment.js"\nlet a = 1;', []),
        ('const text = "import"; const from = 1;', []),
        ("", []),
    ],
)
def test_relative_imports(text: str, expected: list[str]) -> None:
    assert relative_imports(text) == expected


def test_dependencies_are_transitive_once_each_and_stay_in_the_page() -> None:
    modules = {
        "el.js": 'import { a } from "./lib/a.js";\nimport "./lib/b.js";',
        "lib/a.js": 'import { c } from "./c.js";\nimport { b } from "./b.js";',
        "lib/b.js": 'import { a } from "./a.js";',  # a cycle
        "lib/c.js": 'import { out } from "../../outside.js";\nimport { gone } from "./gone.js";',
    }
    assert dependencies("el.js", modules.get) == ["lib/a.js", "lib/c.js", "lib/b.js"]
    assert dependencies("missing.js", modules.get) == []


def test_the_bar_needs_its_library_and_not_the_other_elements_parts() -> None:
    root = web_root()
    files = set(page_files(root))
    needs = dependencies("snapshot-bar.js", lambda path: (root / path).read_text() if path in files else None)
    assert {"lib/stream.js", "lib/api.js", "lib/token.js", "lib/clock.js", "lib/format.js"} <= set(needs)
    assert "lib/logbuffer.js" not in needs and "lib/panel-style.js" not in needs
    assert all(path in files for path in needs)
