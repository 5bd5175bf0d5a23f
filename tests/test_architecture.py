"""The package's floor plan, checked on its import graph (every import, also inside functions).

- no import cycles (a lazy import inside a function is still an edge: it hides the cycle from
  readers, not from the interpreter);
- no upward imports: a layer imports only its own and lower layers (LAYERS below);
- no private name (`_x`) imported from another package;
- the Ray toolkit (`datadiet.engine`, `datadiet.engine.ray`) knows no operation: it imports nothing
  from `curate`, `eval`, `train`, `sweep` or `cli`.

Imports under `if TYPE_CHECKING:` are annotations only and are not edges.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "datadiet"

# Lowest first. A module belongs to the first prefix it matches (so "datadiet" itself, holding
# only __version__, is the bottom layer).
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "datadiet.errors",
        "datadiet.progress",
        "datadiet.schema",
        "datadiet.hashing",
        "datadiet.runtime",
        "datadiet.config",
    ),
    ("datadiet.store",),
    ("datadiet.engine",),
    ("datadiet.curate",),
    ("datadiet.train",),
    ("datadiet.eval",),
    ("datadiet.sweep",),
    ("datadiet.api",),
    ("datadiet.ui", "datadiet.cli"),
)
TOOLKIT = ("datadiet.engine", "datadiet.engine.ray")
OPERATIONS = ("datadiet.curate", "datadiet.eval", "datadiet.train", "datadiet.sweep", "datadiet.cli")


def _module_name(path: Path, src: Path) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(name: str, modules: Mapping[str, Path]) -> bool:
    return name in modules and modules[name].name == "__init__.py"


def _package_of(name: str, modules: Mapping[str, Path]) -> str:
    return name if _is_package(name, modules) else name.rpartition(".")[0]


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes inside `if TYPE_CHECKING:` blocks."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def _resolve(importer: str, node: ast.ImportFrom, modules: Mapping[str, Path]) -> str:
    if not node.level:
        return node.module or ""
    base = importer if _is_package(importer, modules) else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def imports_of(modules: Mapping[str, Path]) -> Iterator[tuple[str, str, str | None]]:
    """(importer, imported module, imported name or None) for every runtime import of a datadiet module."""
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_only(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == ROOT:
                        yield name, alias.name, None
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(name, node, modules)
                if target.split(".")[0] != ROOT:
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in modules:  # `from pkg import module`
                        yield name, sub, None
                    else:
                        yield name, target, alias.name


def find_cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or with a self-edge (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def layer_of(name: str) -> int | None:
    for i, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return i
    return 0 if name == ROOT else None


def problems(src: Path) -> list[str]:
    """Every breach of the rules in the module docstring, one line each."""
    modules = {_module_name(p, src): p for p in sorted((src / ROOT).rglob("*.py"))}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    out = [
        f"{m} is in no layer: add it to LAYERS in tests/test_architecture.py" for m in modules if layer_of(m) is None
    ]
    for importer, target, name in imports_of(modules):
        if target != importer:
            edges[importer].add(target)
        if (layer_of(target) or 0) > (layer_of(importer) or 0):
            out.append(f"upward import: {importer} imports {target}")
        private = name is not None and name.startswith("_") and not name.startswith("__")
        if private and _package_of(importer, modules) != _package_of(target, modules):
            out.append(f"private name across packages: {importer} imports {target}.{name}")
        if importer in TOOLKIT and any(target == p or target.startswith(p + ".") for p in OPERATIONS):
            out.append(f"the engine toolkit imports an operation: {importer} imports {target}")
    out += [f"import cycle: {' -> '.join(c)}" for c in find_cycles(edges)]
    return out


def test_the_package_keeps_its_floor_plan() -> None:
    assert problems(SRC) == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"errors.py": "import datadiet.schema\n", "schema.py": "def f():\n    from datadiet import errors\n"},
            "import cycle: datadiet.errors -> datadiet.schema",
        ),
        ({"store/x.py": "from datadiet.curate.y import z\n", "curate/y.py": "z = 1\n"}, "upward import"),
        ({"curate/y.py": "from datadiet.store.x import _hidden\n", "store/x.py": "_hidden = 1\n"}, "private name"),
        ({"curate/a/x.py": "from datadiet.curate.b.y import _h\n", "curate/b/y.py": "_h = 1\n"}, "private name"),
        ({"mystery.py": ""}, "is in no layer"),
        ({"engine/ray.py": "from datadiet.curate import y\n", "curate/y.py": ""}, "toolkit imports an operation"),
    ],
)
def test_the_checker_catches_each_breach(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    root = tmp_path / ROOT
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(text)
    found = problems(tmp_path)
    assert any(expected in p for p in found), found


def test_type_checking_imports_are_not_edges(tmp_path: Path) -> None:
    root = tmp_path / ROOT
    root.mkdir()
    (root / "__init__.py").touch()
    (root / "errors.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from datadiet import schema\n"
    )
    (root / "schema.py").write_text("import datadiet.errors\n")
    assert problems(tmp_path) == []


def test_private_names_within_one_package_are_fine(tmp_path: Path) -> None:
    root = tmp_path / ROOT / "curate" / "op"
    root.mkdir(parents=True)
    for folder in (tmp_path / ROOT, tmp_path / ROOT / "curate", root):
        (folder / "__init__.py").touch()
    (root / "find.py").write_text("_h = 1\n")
    (root / "ray.py").write_text("from datadiet.curate.op.find import _h\n")
    assert problems(tmp_path) == []
