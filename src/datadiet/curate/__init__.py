"""Curation operations on dataset versions, one package each: `ingest/`, `dedupe/`, `duplicate/`,
`subset/` (and the built-in `corpus`, `export`/`head`).

Each operation's `op.py` holds its parameters and the one function that resolves its input,
computes its version parameters and commits the version (`from datadiet.curate.dedupe.op import
dedupe`); beside it are its local build, its Ray build (`ray.py`, imported only for `--engine ray`)
and its explanation. This package imports nothing, so importing one operation never pulls in the
dependencies of the others.
"""
