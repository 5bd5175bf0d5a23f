"""`lineage`: the chain of operations from a version back to its source files, as `curate lineage` prints it.

for step in lineage(store, "tiny@3f2a"): print(step["ref"], step["operation"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from datadiet.errors import RefError

if TYPE_CHECKING:
    pass
from datadiet.store.dataset import Dataset
from datadiet.store.store import Store


def lineage(store: Store, ref: str) -> list[dict[str, Any]]:
    """The chain of artefacts from REF back to its source files, REF first (breadth-first, no repeats).

    Each entry has `ref`, `kind`, `operation`, `params` and `parents`; source files appear as
    entries of kind `file` with their path and sha256 taken from the ingest parameters.
    """
    start = store.find(ref)
    out: list[dict[str, Any]] = []
    queue: list[Dataset] = [start]
    seen: set[str] = set()
    while queue:
        ds = queue.pop(0)
        if ds.ref in seen:
            continue
        seen.add(ds.ref)
        m = ds.manifest
        out.append(
            {
                "ref": ds.ref,
                "kind": ds.kind,
                "operation": m.operation,
                "params": m.params,
                "parents": m.parents,
                "rows": m.rows,
            }
        )
        sources = {s.get("sha256"): s.get("path") for s in m.params.get("sources", []) if isinstance(s, dict)}
        for parent in m.parents:
            if parent.startswith("file:sha256:"):
                digest = parent.removeprefix("file:sha256:")
                if parent not in seen:
                    seen.add(parent)
                    out.append(
                        {
                            "ref": parent,
                            "kind": "file",
                            "operation": "source",
                            "params": {"path": sources.get(digest)},
                            "parents": [],
                            "rows": None,
                        }
                    )
            elif "@" in parent:
                try:
                    queue.append(store.find(parent))
                except RefError:
                    out.append(
                        {"ref": parent, "kind": "missing", "operation": "?", "params": {}, "parents": [], "rows": None}
                    )
    return out
