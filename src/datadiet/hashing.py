"""Low-level 64-bit mixing shared by every layer: shingle hashing, hash partitioning, seeded order.

    part = fmix64(keys) % np.uint64(parts)     # a well-spread partition of uint64 keys

It sits at the bottom of the package so that both operations (dedupe's shingles, the statistics)
and the Ray toolkit (hash-partitioned shuffles) use the one function without importing each other.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]

MASK64 = (1 << 64) - 1


def fmix64_int(x: int) -> int:
    """MurmurHash3's 64-bit finaliser on a Python int (a bijection on [0, 2^64))."""
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & MASK64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & MASK64
    return x ^ (x >> 33)


def fmix64(x: U64) -> U64:
    """`fmix64_int` over a uint64 array; multiplication wraps mod 2^64, as intended."""
    x = x ^ (x >> np.uint64(33))
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x
