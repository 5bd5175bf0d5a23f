"""Short functions and files in src/: no function over MAX_FUNCTION_LINES, no file over MAX_FILE_LINES.

A function's length counts its lines from `def` to its last line, its docstring left out (a
docstring that explains is never the problem). Long functions are split along their steps so each
reads top to bottom, like nanoGPT's loop. ALLOWED / ALLOWED_FILES hold what their owners have not
split yet; an entry that is no longer needed fails the test too, so the lists only shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "datadiet"
MAX_FUNCTION_LINES = 80
MAX_FILE_LINES = 700

# "path relative to src/datadiet::qualified function name" -> why it is still long (owner).
ALLOWED: dict[str, str] = {}
# "path relative to src/datadiet" -> why it is still long (owner).
ALLOWED_FILES: dict[str, str] = {}


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    lines = (node.end_lineno or node.lineno) - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines -= (first.end_lineno or first.lineno) - first.lineno + 1
    return lines


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """`path::Class.function` -> lines, for every function (methods and nested ones too) over LIMIT."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str, rel: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                if _body_lines(child) > limit:
                    out[f"{rel}::{name}"] = _body_lines(child)
                visit(child, f"{name}.", rel)
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", rel)

    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        visit(ast.parse(path.read_text(encoding="utf-8")), "", rel)
    return out


def long_files(root: Path, limit: int = MAX_FILE_LINES) -> dict[str, int]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            out[path.relative_to(root).as_posix()] = lines
    return out


def test_no_function_is_long() -> None:
    found = long_functions(SRC)
    over = {k: v for k, v in found.items() if k not in ALLOWED}
    assert not over, f"split these along their steps (<= {MAX_FUNCTION_LINES} lines each): {over}"
    stale = sorted(set(ALLOWED) - set(found))
    assert not stale, f"these are short now: remove them from ALLOWED in tests/test_sizes.py: {stale}"


def test_no_file_is_long() -> None:
    found = long_files(SRC)
    over = {k: v for k, v in found.items() if k not in ALLOWED_FILES}
    assert not over, f"split these files by job (<= {MAX_FILE_LINES} lines each): {over}"
    stale = sorted(set(ALLOWED_FILES) - set(found))
    assert not stale, f"these are short now: remove them from ALLOWED_FILES in tests/test_sizes.py: {stale}"


@pytest.mark.parametrize("limit", [3])
def test_the_checker_counts_without_the_docstring(tmp_path: Path, limit: int) -> None:
    (tmp_path / "m.py").write_text(
        'def short():\n    """A docstring\n    of three\n    lines."""\n    return 1\n\n\n'
        "class C:\n    def long(self):\n        a = 1\n        b = 2\n        return a + b\n"
    )
    assert long_functions(tmp_path, limit) == {"m.py::C.long": 4}
    assert long_files(tmp_path, 11) == {"m.py": 12}
