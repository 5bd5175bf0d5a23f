"""Curation operations on dataset versions: ingest, the built-in corpus, dedupe, duplicate, subset, stats.

Each operation lives in its own module and is imported from there (for example
`from datadiet.curate.dedupe import dedupe`); this package imports nothing, so importing one
operation never pulls in the dependencies of the others.
"""
