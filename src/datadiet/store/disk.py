"""Local-disk helpers of the store: durable renames (`fsync_dir`) and the one-line error of a failed
write (`disk_error`: no space, a file removed under us, no permission).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

from datadiet.errors import DatadietError

if TYPE_CHECKING:
    pass


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def disk_error(
    exc: OSError, root: Path, where: str | None = None, fix: str = "pass --store to a writable folder"
) -> DatadietError:
    where = where or f"store {root}"
    if exc.errno == errno.ENOSPC:
        return DatadietError(
            f"no space left on the device of {where}; free some space and rerun (nothing was published)"
        )
    if exc.errno == errno.ENOENT:
        # Not a write problem: a file this command was reading or writing was removed under it.
        return DatadietError(
            f"{exc.filename or 'a file'} disappeared while this command used it (removed by another process?); "
            "rerun the command (nothing was published)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return DatadietError(f"cannot write to {where}: {exc.strerror}; {fix}")
    return DatadietError(f"cannot write to {where}: {exc}; nothing was published")
