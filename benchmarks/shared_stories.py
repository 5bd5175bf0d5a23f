"""The real TinyStories text of ../shared/data, read in place by the benchmarks (never copied here).

from shared_stories import SHARED, read_stories   # a benchmark run as `python benchmarks/X.py`
"""

from __future__ import annotations

import os
from pathlib import Path

# ../shared/data beside the checkout; $DATADIET_SHARED_DATA points elsewhere (e.g. from a git worktree).
SHARED = Path(os.environ.get("DATADIET_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def read_stories(names: tuple[str, ...], *, required: bool = True) -> list[str]:
    """The stories of the files NAMES in SHARED that exist, in order (stories end with a `<|endoftext|>` line).

    Raises:
        SystemExit: REQUIRED and none of the files exists.
    """
    out: list[str] = []
    for name in names:
        path = SHARED / name
        if path.is_file():
            out.extend(path.read_text(encoding="utf-8").split("\n<|endoftext|>\n")[:-1])
    if required and not out:
        raise SystemExit(f"no stories found in {SHARED}; this benchmark needs ../shared/data")
    return out
