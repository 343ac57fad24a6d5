"""Code shape the project promises: no function in gradlab/ longer than 100 lines.

(Complexity is ruff's C901, max-complexity 15, in pyproject.toml; ``ruff check .`` enforces it.)
"""

from __future__ import annotations

import ast

from conftest import ROOT

MAX_LINES = 100


def test_no_function_in_gradlab_over_100_lines():
    long = []
    for path in sorted((ROOT / "gradlab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines})")
    assert not long, "functions over 100 lines: " + ", ".join(long)
