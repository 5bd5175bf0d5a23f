"""The statistics' MinHash signer: signs each block's distinct texts in worker threads into one
preallocated table, then labels near-duplicate clusters with dedupe's own finder, so a
statistic's "near duplicate" is exactly what `curate dedupe` would remove.

    signer = _Signer(_config(0.8, seed=0), n)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from datadiet.curate.dedupe.find import Signed, find_duplicates
from datadiet.curate.dedupe.minhash import MinhashConfig, band_keys, permutations, signatures
from datadiet.curate.dedupe.normalize import shingle_hashes

U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


@dataclass
class _Signer:
    """MinHash signatures and band keys of the distinct normalised texts, in first-seen order.

    Rows are filled by worker threads, each block its own rows, so no lock is needed; `sig` is
    allocated for every document but only the pages of written rows are ever touched.
    """

    cfg: MinhashConfig
    capacity: int
    perms: tuple[U32, U32] = field(init=False)
    bands: int = field(init=False)
    rows: int = field(init=False)
    sig: U32 = field(init=False)
    keys: U64 = field(init=False)
    used: int = 0

    def __post_init__(self) -> None:
        self.perms = permutations(self.cfg.num_perm, self.cfg.seed)
        self.bands, self.rows = self.cfg.bands_rows()
        self.sig = np.empty((self.capacity, self.cfg.num_perm), dtype=np.uint32)
        self.keys = np.empty((self.capacity, self.bands), dtype=np.uint64)

    def reserve(self, count: int) -> int:
        """The first of `count` consecutive rows for the next block (called in block order)."""
        start = self.used
        self.used += count
        return start

    def sign(self, row: int, words: U64, offsets: I64, docs: I64) -> None:
        """Sign documents `docs` of a block (its word tokens and offsets) into rows row, row + 1, ..."""
        if not docs.size:
            return
        counts = offsets[docs + 1] - offsets[docs]
        if docs.size == offsets.size - 1:
            tokens, tok_off = words, offsets
        else:
            tok_off = np.zeros(docs.size + 1, dtype=np.int64)
            np.cumsum(counts, out=tok_off[1:])
            tokens = words[np.arange(int(tok_off[-1])) + np.repeat(offsets[docs] - tok_off[:-1], counts)]
        hashes, sh_off = shingle_hashes(tokens, tok_off, self.cfg.ngram)
        sig = signatures(hashes, sh_off, self.perms)
        self.sig[row : row + docs.size] = sig
        self.keys[row : row + docs.size] = band_keys(sig, self.bands, self.rows)

    def labels(self, doc_keys: U64) -> I64:
        """Cluster labels of the signed rows (whose normalised-text hashes are `doc_keys`) under the dedupe."""
        m = self.used
        digests = np.zeros((m, 2), dtype=np.uint64)
        digests[:, 0] = doc_keys
        signed = Signed(digests, np.zeros(m, dtype=np.int64), self.sig[:m], self.keys[:m])
        return find_duplicates(signed, self.cfg).label


def _config(threshold: float, seed: int) -> MinhashConfig:
    # `curate dedupe --method minhash`'s defaults (word 5-grams, 128 permutations, its bands and
    # rows, no verification): only they are shingled from the statistics' word tokens.
    cfg = MinhashConfig(threshold=threshold, seed=seed)
    if cfg.shingle != "word":  # pragma: no cover - the defaults
        raise ValueError("only word shingles are built from the statistics' word tokens")
    return cfg
