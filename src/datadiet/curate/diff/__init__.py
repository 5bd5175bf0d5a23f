"""`curate diff`: what changed between two dataset versions (read-only; makes no version)."""
