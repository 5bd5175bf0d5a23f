"""`curate corrupt`: labelled typos, shuffled sentences, truncations and mixed-in documents (see `op`)."""

from datadiet.curate.corrupt.op import CORRUPT_HELP, KINDS, CorruptConfig, corrupt, corrupt_rows

__all__ = ["CORRUPT_HELP", "KINDS", "CorruptConfig", "corrupt", "corrupt_rows"]
