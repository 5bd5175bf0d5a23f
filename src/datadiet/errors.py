"""Exceptions the CLI turns into one-line messages.

`DatadietError` is a failure at run time (exit code 1); `UsageError` is a bad argument or
input the user can fix by changing the command (exit code 2). Messages are one line that names
the problem and the fix.
"""

from __future__ import annotations


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


def real_number(value: object, option: str) -> float:
    """VALUE as a float, or a UsageError naming OPTION (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{option} must be a number, not {value!r}")
    return float(value)
