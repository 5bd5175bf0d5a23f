"""`Dataset`, a handle on one stored version (its manifest, its files, its parts for workers), and `Commit`.

ds = store.resolve("tiny@3f2a")
ds.manifest.params, ds.parts, ds.read(), ds.part_sources()
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from datadiet.errors import DatadietError
from datadiet.store.model import Manifest
from datadiet.store.parts import PartSource, part_metadata
from datadiet.store.remote import first_line

if TYPE_CHECKING:
    from datadiet.store.store import Store


@dataclass(frozen=True)
class Dataset:
    """A published version of any kind of artefact (a dataset, a tokenizer, a run, ...).

    `folder` is the version's folder on this machine: the version itself in a local store, its
    place in the cache for a remote one. Read files through `path`, `file` or `parts`, which fetch
    them from a remote store first (and are plain paths for a local one).
    """

    name: str
    version: str
    kind: str
    folder: Path
    manifest: Manifest
    store: Store | None = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def remote(self) -> bool:
        """Whether the version lives on a remote store (its files are fetched into the cache on use)."""
        return self.store is not None and self.store.remote is not None

    @property
    def location(self) -> str:
        """Where the version is published, for people: its folder, or its URI on a remote store."""
        if self.store is not None and self.store.remote is not None:
            return self.store.remote.url(self.kind, self.name, self.version)
        return str(self.folder)

    @property
    def path(self) -> Path:
        """The version's folder with every file present (on a remote store, all are fetched first).

        Prefer `file(name)` or `parts` where only some files are needed: they fetch only those.
        """
        if self.store is not None and self.store.remote is not None:
            self.store._fetch(self, sorted(self.manifest.files))
        return self.folder

    def file(self, rel: str) -> Path:
        """The local path of one file of the version (fetched from a remote store if it has one)."""
        if self.store is not None and self.store.remote is not None and rel in self.manifest.files:
            self.store._fetch(self, [rel])
        return self.folder / rel

    def _part_names(self) -> list[str]:
        return sorted(
            r for r in self.manifest.files if "/" not in r and r.startswith("part-") and r.endswith(".parquet")
        )

    @property
    def parts(self) -> list[Path]:
        """The local paths of the Parquet parts the manifest lists (fetched first from a remote store).

        From the manifest, not the folder: a file planted beside the parts is never read as data
        (`curate verify` reports it). Each part's footer is checked once (`check_parts`), so every
        reader of a truncated or missing part gets the one line that points at `curate verify`.
        """
        paths = self._part_paths()
        self.check_parts()
        return paths

    def _part_paths(self) -> list[Path]:
        names = self._part_names()
        if self.store is not None and self.store.remote is not None:
            self.store._fetch(self, names)
        return [self.folder / n for n in names]

    def part_sources(self) -> list[PartSource]:
        """The Parquet parts as small picklable handles a cluster worker reads wherever the store lives.

        Unlike `parts`, nothing is downloaded here: a local store's handles are paths; a remote
        store's read straight from the object store on whichever machine calls `read`. Each
        handle knows its row count (from the part's footer; remote footers are read concurrently,
        once per `Dataset`: a version never changes, and a Ray dedupe or stats asks twice).
        """
        return list(self._part_sources)

    @functools.cached_property
    def _part_sources(self) -> tuple[PartSource, ...]:
        remote = self.store.remote if self.store is not None else None
        if remote is None:
            sources = [PartSource(p.name, str(p)) for p in self.parts]
        else:
            key = (self.kind, self.name, self.version)
            sources = [
                PartSource(n, remote.path(*key, n), self.manifest.files[n], remote, key) for n in self._part_names()
            ]
        try:
            footers = part_metadata(sources)
        except DatadietError:
            raise
        except Exception as exc:  # a truncated or missing part: pyarrow's OSError or ArrowInvalid
            raise DatadietError(
                f"{self.ref} has a missing or damaged part ({first_line(exc)}); run `curate verify {self.ref}`"
            ) from exc
        return tuple(
            PartSource(s.name, s.path, s.sha256, s.remote, s.key, m.num_rows)
            for s, m in zip(sources, footers, strict=True)
        )

    @property
    def rows(self) -> int:
        return self.manifest.rows

    def scan(self) -> pl.LazyFrame:
        parts = self.parts
        if not parts:
            raise DatadietError(f"{self.ref} has no Parquet parts (it is a {self.kind[:-1]}, not a dataset)")
        self.check_parts()
        # glob=False: a store path may hold "[" or "*", which polars would otherwise expand.
        return pl.scan_parquet([str(p) for p in parts], glob=False)

    def read(self) -> pl.DataFrame:
        return self.scan().collect()

    def check_parts(self) -> None:
        """Raise a one-line `DatadietError` pointing at `curate verify` if a part is missing or truncated.

        Reads each (local or cached) part's footer, once per `Dataset`, so a damaged version is named
        as such instead of failing later as a Parquet decoding error.
        """
        self._footers_ok  # noqa: B018 - reading the footers is the check

    @functools.cached_property
    def _footers_ok(self) -> bool:
        import pyarrow.parquet as pq

        for path in self._part_paths():
            try:
                pq.read_metadata(path)
            except Exception as exc:  # pyarrow raises OSError or ArrowInvalid for a damaged footer
                raise DatadietError(
                    f"{path.name} of {self.ref} is missing or damaged ({first_line(exc)}); "
                    f"run `curate verify {self.ref}`"
                ) from exc
        return True

    def iter_frames(self) -> Iterator[pl.DataFrame]:
        """Yield the parts one at a time, so a large version never has to fit in memory at once."""
        self.check_parts()
        if self.store is not None and self.store.remote is not None:
            # One part fetched at a time: the first frame comes without waiting for the whole version.
            for name in self._part_names():
                yield self._read_part(self.file(name))
            return
        for part in self.parts:
            yield self._read_part(part)

    def _read_part(self, path: Path) -> pl.DataFrame:
        try:
            return pl.read_parquet(path, glob=False)
        except (OSError, pl.exceptions.ComputeError) as exc:
            raise DatadietError(
                f"{path.name} of {self.ref} cannot be read ({first_line(exc)}); run `curate verify {self.ref}`"
            ) from exc


@dataclass(frozen=True)
class Commit:
    """The result of `Store.commit`: the version and whether it already existed."""

    dataset: Dataset
    up_to_date: bool


def read_parts(source: Dataset) -> tuple[pl.DataFrame, list[int]]:
    """All rows of SOURCE (as its parts concatenated) and the rows of each part."""
    frames = list(source.iter_frames())
    if not frames:
        return source.read(), []  # raises: not a dataset
    rows = [f.height for f in frames]
    return (pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]), rows
