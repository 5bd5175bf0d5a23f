"""Training curves as TensorBoard event files (the optional `tensorboard` extra).

`curate train --tensorboard` writes every step's train loss, lr and tokens/s, and each validation
loss, live while the run trains (`curate sweep --tensorboard`: each run's as the sweep publishes it;
a sweep trains its runs together, as one ensemble), into

    <store>/tensorboard/<run name>-<version>/     (view: tensorboard --logdir <store>/tensorboard)

one folder per run, so one `--logdir` shows every run of a sweep side by side. The folder is a view,
not part of the immutable run: the run's own record is `metrics.jsonl` in its folder
(`<store>/runs/<name>/<version>/metrics.jsonl`; `<store>/work/runs/<name>-<version>/` while it
trains). A run found up to date gets its curves written from that file, so asking later works too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from datadiet.errors import UsageError

TB_DIR = "tensorboard"
# metrics.jsonl keys -> TensorBoard tags (grouped in two panels: loss, and speed/schedule).
TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "lr": "schedule/lr",
    "tokens_per_s": "speed/tokens_per_s",
}


def tensorboard_dir(store_root: Path, name: str, version: str) -> Path:
    """Where the event files of run NAME@VERSION go."""
    return Path(store_root) / TB_DIR / f"{name}-{version}"


class TensorBoardLog:
    """Writes metrics lines (`{"step": …, "train_loss": …}`) as scalars; `on_step` is the trainer's callback.

    Raises:
        UsageError: The `tensorboard` package is not installed.
    """

    @staticmethod
    def check_installed() -> None:
        """Fail now, before any work, when the extra is missing."""
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise UsageError(
                "--tensorboard needs the tensorboard extra: pip install 'datadiet[tensorboard]'"
            ) from None

    def __init__(self, logdir: Path) -> None:
        self.check_installed()
        from torch.utils.tensorboard import SummaryWriter

        Path(logdir).mkdir(parents=True, exist_ok=True)
        self.logdir = Path(logdir)
        #: Whether event files were there before this writer (its own file appears at once).
        self.had_events = any(self.logdir.glob("events.*"))
        self._writer: Any = SummaryWriter(log_dir=str(logdir), flush_secs=10)

    def on_step(self, line: Mapping[str, float]) -> None:
        step = int(line["step"])
        for key, tag in TAGS.items():
            if key in line:
                self._writer.add_scalar(tag, float(line[key]), step)

    def write_curve(self, curve: Iterable[Mapping[str, float]]) -> None:
        for line in curve:
            self.on_step(line)

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """The scalars in LOGDIR's event files, tag -> [(step, value)] (for tests and checks)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def write_run_curves(store_root: Path, run: Any) -> Path:
    """Write a published run's curves (from its metrics.jsonl) unless its folder already has events.

    Used for runs trained without a live writer: a sweep's (trained together as one ensemble, then
    published one by one) and runs found up to date. Returns the run's TensorBoard folder.
    """
    import json

    from datadiet.train.checkpoint import METRICS_FILE

    logdir = tensorboard_dir(store_root, run.name, run.version)
    if logdir.is_dir() and any(logdir.glob("events.*")):
        return logdir
    lines = run.file(METRICS_FILE).read_text(encoding="utf-8").splitlines()
    log = TensorBoardLog(logdir)
    try:
        log.write_curve(json.loads(line) for line in lines if line.strip())
    finally:
        log.close()
    return logdir
