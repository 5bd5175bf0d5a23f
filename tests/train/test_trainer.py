"""The training loop: determinism, resume, NaN handling, sampling and the learning-rate schedule."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from datadiet.errors import DatadietError, UsageError
from datadiet.train.checkpoint import load_checkpoint
from datadiet.train.config import resolve_config
from datadiet.train.model import GPT
from datadiet.train.trainer import BatchSampler, TrainResult, eval_starts, lr_at, train

VOCAB = 64
# threads=1: these models are too small for a second thread to pay (and it is 30x slower on a shared CPU).
FAST = {
    "steps": "30",
    "batch_size": "4",
    "block_size": "16",
    "eval_every": "10",
    "eval_tokens": "256",
    "checkpoint_every": "10",
    "threads": "1",
    "warmup": "5",
}


def corpus(n: int = 20_000, seed: int = 0) -> np.ndarray:
    """A learnable token stream: one 200-token phrase repeated, so the next token is predictable."""
    phrase = np.random.default_rng(seed).integers(0, VOCAB - 1, size=200)
    return np.tile(phrase, n // 200).astype(np.uint16)


def run(out: Path, overrides: dict[str, str] | None = None, **kwargs: Any) -> TrainResult:
    model_cfg, train_cfg = resolve_config("tiny", VOCAB, {**FAST, **(overrides or {})})
    data = corpus()
    return train(model_cfg, train_cfg, data, data[:3000], out, **kwargs)


def metrics(out: Path) -> list[dict[str, float]]:
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in ("tokens_per_s", "elapsed_s")} for line in lines]


def test_training_writes_metrics_checkpoint_and_learns(tmp_path: Path) -> None:
    result = run(tmp_path, {"steps": "100", "eval_every": "40"})
    lines = metrics(tmp_path)
    assert [line["step"] for line in lines] == list(range(1, 101))
    assert [line["step"] for line in lines if "val_loss" in line] == [40, 80, 100]
    assert result.steps == 100
    assert result.tokens == 100 * 4 * 16
    assert result.val_loss == lines[-1]["val_loss"]
    assert result.train_loss == lines[-1]["train_loss"]
    assert result.params == GPT(resolve_config("tiny", VOCAB, FAST)[0]).num_params()
    assert result.checkpoint == tmp_path / "checkpoint.pt"
    assert load_checkpoint(result.checkpoint)["step"] == 100
    assert lines[0]["train_loss"] == pytest.approx(math.log(VOCAB), abs=0.3)
    assert result.val_loss < 2.0  # from ln(64) = 4.16 at the start; 1.69 after 100 steps
    assert set(result.to_dict()) == {
        "train_loss",
        "val_loss",
        "steps",
        "tokens",
        "wall_time_s",
        "tokens_per_s",
        "params",
        "checkpoint",
    }


def test_same_seed_same_losses_other_seed_differs(tmp_path: Path) -> None:
    run(tmp_path / "a", {"dropout": "0.1"})
    run(tmp_path / "b", {"dropout": "0.1"})
    run(tmp_path / "c", {"dropout": "0.1", "seed": "1"})
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")
    assert metrics(tmp_path / "a")[-1]["train_loss"] != metrics(tmp_path / "c")[-1]["train_loss"]


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("overrides", [{"dropout": "0.1"}, {"sampler": "epoch", "grad_accum": "2"}])
def test_resume_matches_uninterrupted_run(tmp_path: Path, overrides: dict[str, str]) -> None:
    whole = run(tmp_path / "whole", overrides)

    def stop_at_20(line: dict[str, float]) -> None:
        if line["step"] == 20:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(tmp_path / "cut", {**overrides, "checkpoint_every": "20"}, on_step=stop_at_20)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 20
    resumed = run(tmp_path / "cut", {**overrides, "checkpoint_every": "20"}, resume=True)

    assert metrics(tmp_path / "cut") == metrics(tmp_path / "whole")
    assert (resumed.train_loss, resumed.val_loss) == (whole.train_loss, whole.val_loss)
    a = load_checkpoint(whole.checkpoint)
    b = load_checkpoint(resumed.checkpoint)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_resume_drops_metrics_written_after_the_checkpoint(tmp_path: Path) -> None:
    def stop_at_25(line: dict[str, float]) -> None:
        if line["step"] == 25:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(tmp_path, on_step=stop_at_25)
    assert len(metrics(tmp_path)) == 25
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 26, "train_lo')  # torn by a kill
    run(tmp_path, resume=True)
    assert [line["step"] for line in metrics(tmp_path)] == list(range(1, 31))


def test_existing_run_is_not_overwritten(tmp_path: Path) -> None:
    run(tmp_path)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(UsageError, match="already holds a run's checkpoint; pass --resume"):
        run(tmp_path)
    with pytest.raises(UsageError, match=r"made with lr=0.003 \(now 0.001\)"):
        run(tmp_path, {"lr": "1e-3"}, resume=True)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_resume_without_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(DatadietError, match="no checkpoint at"):
        run(tmp_path, resume=True)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    loss_of = GPT.loss  # the trainer's path with the chunked loss (ce_chunk > 0)

    def poisoned(self: GPT, idx: torch.Tensor, targets: torch.Tensor, ce_chunk: int = 0) -> Any:
        loss = loss_of(self, idx, targets, ce_chunk)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 15:
                loss = loss * float("nan")
        return loss

    monkeypatch.setattr(GPT, "loss", poisoned)
    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(DatadietError) as info:
        run(tmp_path)
    message = str(info.value)
    assert message.startswith("training loss became NaN or infinite at step 15; ")
    assert f"last good checkpoint kept at {ckpt} (step 10)" in message
    assert "--set lr=0.0003" in message
    assert "\n" not in message
    assert load_checkpoint(ckpt)["step"] == 10
    assert [line["step"] for line in metrics(tmp_path)] == list(range(1, 15))


def test_huge_learning_rate_is_caught(tmp_path: Path) -> None:
    # Without clipping, lr=1e6 blows the weights up within a few steps: the run must stop cleanly.
    with pytest.raises(DatadietError, match="became NaN or infinite at step"):
        run(tmp_path, {"lr": "1e6", "min_lr": "1.0", "grad_clip": "0.0", "warmup": "0"})


def test_random_sampler_is_a_function_of_seed_and_index() -> None:
    _, cfg = resolve_config("tiny", VOCAB, {"batch_size": "8", "block_size": "16"})
    s1, s2 = BatchSampler(1000, cfg), BatchSampler(1000, cfg)
    assert np.array_equal(s1.starts(7), s2.starts(7))
    assert not np.array_equal(s1.starts(7), s1.starts(8))
    assert s1.starts(3).min() >= 0
    assert s1.starts(3).max() <= 1000 - 17


def test_epoch_sampler_visits_every_window_once_per_epoch() -> None:
    _, cfg = resolve_config("tiny", VOCAB, {"batch_size": "4", "block_size": "10", "sampler": "epoch"})
    sampler = BatchSampler(121, cfg)  # (121 - 1) // 10 = 12 windows = 3 micro-batches per epoch
    first = np.concatenate([sampler.starts(i) for i in range(3)])
    second = np.concatenate([sampler.starts(i) for i in range(3, 6)])
    assert sorted(first.tolist()) == list(range(0, 120, 10))
    assert sorted(second.tolist()) == list(range(0, 120, 10))
    assert first.tolist() != second.tolist()


def test_too_little_data(tmp_path: Path) -> None:
    model_cfg, train_cfg = resolve_config("tiny", VOCAB, FAST)
    with pytest.raises(UsageError, match="training data has 10 tokens, fewer than block_size"):
        train(model_cfg, train_cfg, corpus()[:10], corpus()[:100], tmp_path)
    with pytest.raises(UsageError, match="vocab_size 64"):
        train(model_cfg, train_cfg, np.full(100, 64, dtype=np.uint16), corpus()[:100], tmp_path)


def test_eval_windows_are_evenly_spaced() -> None:
    assert eval_starts(101, 10, 10_000).tolist() == list(range(0, 100, 10))
    assert eval_starts(101, 10, 30).tolist() == [0, 40, 90]  # linspace(0, 9, 3) = 0, 4.5, 9; 4.5 rounds to even


def test_lr_schedule() -> None:
    _, cfg = resolve_config("paper", VOCAB, {})
    assert lr_at(0, cfg) == pytest.approx(1e-5)
    assert lr_at(99, cfg) == pytest.approx(1e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-3)
    assert lr_at(550, cfg) == pytest.approx((1e-3 + 1e-4) / 2)
    assert lr_at(1000, cfg) == pytest.approx(1e-4)


def test_keep_freed_memory_switches_glibc_mmap_off_for_cpu_training_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from datadiet.train import trainer

    calls: list[tuple[Any, int]] = []

    class FakeLibc:
        def mallopt(self, param: int, value: int) -> int:
            calls.append((param, value))
            return 1

        def malloc_trim(self, pad: int) -> int:
            calls.append(("trim", pad))
            return 1

    monkeypatch.setattr(trainer, "_glibc", lambda: FakeLibc())
    for key in [k for k in os.environ if k.startswith("MALLOC_")]:
        monkeypatch.delenv(key)
    with trainer.keep_freed_memory(torch.device("cpu")):
        assert calls == [(-4, 0), (-1, 2**31 - 1)]  # no mmap; never trim the heap while training
    assert calls[2:] == [(-4, 65536), (-3, 32 << 20), (-1, 64 << 20), ("trim", 0)]
    calls.clear()
    with trainer.keep_freed_memory(torch.device("cuda")):
        pass
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")  # the user tunes malloc: leave it alone
    with trainer.keep_freed_memory(torch.device("cpu")):
        pass
    assert calls == []
