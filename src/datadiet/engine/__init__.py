"""Execution engines for the curation operations: `local` (this machine) and `ray` (a Ray cluster).

The local engine is each operation's own code; the Ray engine runs the same operation on a Ray
cluster and gives an identical version (the engine is never part of a version's parameters). Each
operation keeps its Ray build beside its local one (`curate/<op>/ray.py`, `eval/stats/ray.py`),
built from the toolkit in `engine/ray.py`, which knows no operation. An operation picks its build::

    if check_engine(engine) == "ray":
        require_ray()                                   # a one-line error when Ray is missing
        from datadiet.curate.dedupe import ray as ray_build
        build = ray_build.build(source, cfg, address=address, tracker=tracker)

Invoked by the library functions' `engine=` argument, which the CLI's `--engine` options set.
"""

from __future__ import annotations

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


def require_ray() -> None:
    """Check that Ray (with Ray Data) can be imported, before an operation imports its Ray build.

    Raises:
        UsageError: Ray is not installed.
    """
    try:
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise UsageError("--engine ray needs Ray, which is not installed; run: pip install 'datadiet[ray]'") from exc
