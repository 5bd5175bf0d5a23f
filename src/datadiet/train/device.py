"""The torch device a run trains on, and the CPU threads it uses there.

device = select_device(train_cfg.device)      # "auto": cuda, then mps, then cpu
with cpu_threads(device, train_cfg.threads):  # 0: every core this process may use
    ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from datadiet.errors import UsageError
from datadiet.runtime import cpu_count


def select_device(name: str = "auto") -> torch.device:
    """The torch device for a `TrainConfig.device` value; "auto" prefers cuda, then mps, then cpu.

    Raises:
        UsageError: The named device is not available here.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(name, False):
        raise UsageError(f"device {name!r} is not available on this machine; use --set device=auto")
    return torch.device(name)


@contextlib.contextmanager
def cpu_threads(device: torch.device, threads: int) -> Iterator[None]:
    """Run torch's CPU kernels on `threads` threads (0: every core this process may use), then restore."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(threads or cpu_count())
    try:
        yield
    finally:
        torch.set_num_threads(before)
