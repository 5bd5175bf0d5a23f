"""Execution engines for the curation operations: `local` (this machine) and `ray` (a Ray cluster).

The local engine is the code in `datadiet.curate` and `datadiet.eval.stats`; the Ray engine runs
the same operations on a Ray cluster and gives identical versions (the engine is never part of a
version's parameters): `ray_engine` (dedupe), `ray_degrade` (duplicate, subset), `ray_ingest`
(ingest) and `ray_stats` (stats). `load_ray(module)` imports one, turning a missing `ray` install
into a one-line UsageError.

Invoked by the library functions' `engine=` argument, which the CLI's `--engine` options set.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from datadiet.errors import UsageError

ENGINES = ("local", "ray")


def check_engine(engine: str) -> str:
    """Validate an `--engine` value.

    Raises:
        UsageError: the engine is not one of ENGINES.
    """
    if engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    return engine


def load_ray(module: str = "ray_engine") -> ModuleType:
    """A Ray engine module of this package (`ray_engine` for dedupe; one module per operation).

    Raises:
        UsageError: Ray (with Ray Data) is not installed.
    """
    try:
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise UsageError("--engine ray needs Ray, which is not installed; run: pip install 'datadiet[ray]'") from exc
    return importlib.import_module(f"datadiet.engine.{module}")
