"""Exceptions the CLI turns into one-line messages.

`DatadietError` is a failure at run time (exit code 1); `UsageError` is a bad argument or
input the user can fix by changing the command (exit code 2). Messages are one line that names
the problem and the fix.
"""

from __future__ import annotations

import errno
import os
import re


class DatadietError(Exception):
    """A failure at run time; the CLI prints its message on one line and exits with code 1."""

    exit_code = 1


class UsageError(DatadietError):
    """A bad option value, input or reference; the CLI exits with code 2."""

    exit_code = 2


class RefError(UsageError):
    """A dataset, run or tokenizer reference that does not resolve to exactly one artefact."""


class InputError(UsageError):
    """Input data that cannot be read as asked (missing, empty, not UTF-8, malformed)."""


def whole_number(value: object, option: str) -> int:
    """VALUE as an int, or a UsageError naming OPTION (bools are not numbers here, numpy ints are)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UsageError(f"{option} must be a whole number, not {value!r}")
    return int(value)


# polars (Rust) reports an OS error in words: "... underlying IO error: No space left on device (os error 28)".
_OS_ERROR_CODE = re.compile(r"\(os error (\d+)\)")
# Where no code is given (pyarrow, torch's stream writer), the C library's own words for the common ones.
_OS_ERROR_WORDS = {
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
    "Read-only file system": errno.EROFS,
    "Permission denied": errno.EACCES,
}


def os_error_of(exc: BaseException) -> OSError | None:
    """The operating-system error behind EXC, or None.

    EXC itself when it is an `OSError`; else the first `OSError` in its cause/context chain; else
    one that a library reported only in its message — polars raises `ComputeError`, not `OSError`,
    for a full disk while writing Parquet. Lets every writer's failure reach the user as the one
    documented line ("no space left on the device …") instead of "unexpected ComputeError".
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        text = str(current)
        match = _OS_ERROR_CODE.search(text)
        if match:
            code = int(match.group(1))
            return OSError(code, os.strerror(code))
        for words, code in _OS_ERROR_WORDS.items():
            if words in text:
                return OSError(code, os.strerror(code))
        current = current.__cause__ or current.__context__
    return None
