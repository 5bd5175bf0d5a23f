"""`curate corrupt`: labelled typos, shuffled sentences, truncations and mixed-in documents (see `op`)."""
