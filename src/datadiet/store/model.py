"""The version model: what a stored version is (`Manifest`), the artefact kinds, and the canonical
JSON, names and file hashes that version ids and manifests are computed from.

    Manifest.load(folder / MANIFEST_FILE).params      # a version's resolved parameters
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datadiet.errors import UsageError
from datadiet.schema import FORMAT_VERSION

KINDS = ("datasets", "tokenizers", "tokens", "runs", "evals", "stats", "reports", "sweeps")


VERSION_LEN = 16  # 64 bits of sha256: collisions are negligible for any store a person will fill


_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def canonical_json(value: Any) -> str:
    """The one serialisation used for hashing: sorted keys, no whitespace, tuples as lists."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so memory stays flat for any size."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_name(name: str) -> str:
    """Validate a dataset name: letters, digits, `-`, `_`, `.`, not starting with a dot."""
    if not name or name.startswith(".") or not set(name) <= _NAME_OK or len(name) > 100:
        raise UsageError(f"invalid name {name!r}: use 1-100 letters, digits, '-', '_' or '.' (not starting with '.')")
    return name


@dataclass(frozen=True)
class Manifest:
    """Everything recorded about one immutable version."""

    name: str
    version: str
    kind: str
    parents: list[str]
    operation: str
    params: dict[str, Any]
    seed: int | None
    created: str
    package_version: str
    rows: int
    bytes: int
    files: dict[str, str]
    stats: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def manifest_bytes(manifest: Manifest) -> bytes:
    return (json.dumps(manifest.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
