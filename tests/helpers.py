"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from datadiet.cli import app


def write_stories(path: Path, stories: list[str], sep: str = "<|endoftext|>") -> Path:
    path.write_text("".join(f"{s}\n{sep}\n" for s in stories), encoding="utf-8")
    return path


def cli(runner: CliRunner, *args: str) -> Any:
    """Run `curate ARGS --json` and return the parsed JSON, failing the test with its stderr otherwise."""
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, f"curate {' '.join(args)} failed: {result.output}"
    return json.loads(result.stdout)


def store_snapshot(root: Path) -> dict[str, float]:
    """Every file under a store (locks excluded) with its size and mtime, to prove a command changed nothing."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)  # type: ignore[misc]
        for p in root.rglob("*")
        if p.is_file() and ".locks" not in p.parts
    }
