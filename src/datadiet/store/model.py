"""The version model: what a stored version is (`Manifest`), the artefact kinds, and the canonical
JSON, names and file hashes that version ids and manifests are computed from.

    Manifest.load(folder / MANIFEST_FILE).params      # a version's resolved parameters
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, field
from pathlib import Path
from typing import Any

from pydantic import ConfigDict
from pydantic.dataclasses import dataclass as validated

from datadiet.errors import RefError, UsageError
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


def _name_ok(name: str) -> bool:
    # Not "." or "-" first: a name is a folder in the store and an argument on a command line.
    return bool(name) and len(name) <= 100 and name[0] not in ".-" and set(name) <= _NAME_OK


def check_name(name: str) -> str:
    """Validate a new name: 1-100 letters, digits, `-`, `_`, `.`, not starting with `.` or `-`."""
    if not _name_ok(name):
        raise UsageError(
            f"invalid name {name[:120]!r}: use 1-100 letters, digits, '-', '_' or '.' (not starting with '.' or '-')"
        )
    return name


_VERSION_PREFIX = re.compile(f"[0-9a-f]{{1,{VERSION_LEN}}}")


def check_ref(ref: str) -> tuple[str, str]:
    """Split a ref `NAME[@VERSION]` into (name, version prefix), checked exactly like a new name.

    A ref names a version inside the store and nothing else: `../x`, an absolute path, `x@../y` or
    a 5,000-character string are refused here, before any path is built from them.
    """
    name, at, prefix = ref.partition("@")
    if not _name_ok(name) or (at and not _VERSION_PREFIX.fullmatch(prefix)):
        shown = ref if len(ref) <= 120 else ref[:117] + "..."
        raise RefError(
            f"invalid ref {shown!r}: expected NAME or NAME@VERSION (NAME: 1-100 letters, digits, '-', '_' or '.'; "
            f"VERSION: 1-{VERSION_LEN} hex digits)"
        )
    return name, prefix


@validated(frozen=True, config=ConfigDict(strict=True))
class Manifest:
    """Everything recorded about one immutable version.

    Validated by pydantic when built or loaded, so an edited or damaged `manifest.json` (a list,
    a string where a count belongs) is refused as damaged instead of failing somewhere later.
    `digest` is the sha256 of the rest (`Manifest.expected_digest`): `curate verify` recomputes it,
    so an edit to any field shows, including those the version id does not cover (stats, rows).
    Manifests written before it existed have none.
    """

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
    digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def expected_digest(self) -> str:
        """The sha256 of every field but `digest`, in canonical JSON."""
        body = {k: v for k, v in self.to_dict().items() if k != "digest"}
        return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()

    def sealed(self) -> Manifest:
        """This manifest with its `digest` filled in."""
        import dataclasses

        return dataclasses.replace(self, digest=self.expected_digest())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """A manifest from its JSON; `ValueError` (pydantic's) when it is not one."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a manifest is a JSON object, not a {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def manifest_bytes(manifest: Manifest) -> bytes:
    return (json.dumps(manifest.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
