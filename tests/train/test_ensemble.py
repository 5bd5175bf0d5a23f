"""Ensemble training equals solo training: losses, checkpoints, resume, and a member that fails alone."""

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
from datadiet.train.config import TrainConfig, resolve_config
from datadiet.train.ensemble import Member, train_ensemble
from datadiet.train.ensemble_model import EnsembleGPT
from datadiet.train.model import GPTConfig
from datadiet.train.trainer import TrainResult, train

VOCAB = 96
# ce_chunk 16 < 4 x 16 tokens a micro-batch, so the chunked loss is what is compared; grad_accum 2 covers
# accumulation; clipping at 0.5 bites in the first steps.
FAST = {
    "steps": "12",
    "batch_size": "4",
    "block_size": "16",
    "eval_every": "4",
    "eval_tokens": "160",
    "checkpoint_every": "4",
    "threads": "1",
    "warmup": "3",
    "grad_accum": "2",
    "grad_clip": "0.5",
    "ce_chunk": "16",
}
# The promise of docs/benchmarks.md: every logged float32 loss within 1e-5 relative of the solo run's.
RTOL = 1e-5


def configs(seed: int, **extra: str) -> tuple[GPTConfig, TrainConfig]:
    return resolve_config("tiny", VOCAB, {**FAST, **extra, "seed": str(seed)})


def corpus(seed: int, n: int = 6000) -> np.ndarray:
    phrase = np.random.default_rng(seed).integers(0, VOCAB, size=150)
    return np.tile(phrase, n // 150).astype(np.uint16)


def members(root: Path, seeds: tuple[int, ...] = (0, 1, 2), **extra: str) -> tuple[GPTConfig, list[Member]]:
    model_cfg = configs(0, **extra)[0]
    # Different data per member (as in a sweep's cells) and a shared validation set.
    ms = [Member(configs(s, **extra)[1], corpus(10 + s), corpus(99)[:900], root / f"m{s}") for s in seeds]
    return model_cfg, ms


def lines(out: Path) -> list[dict[str, float]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in rows]


def assert_same_curve(a: list[dict[str, float]], b: list[dict[str, float]]) -> None:
    assert [r.keys() for r in a] == [r.keys() for r in b]
    for ra, rb in zip(a, b, strict=True):
        for k in ra:
            assert ra[k] == pytest.approx(rb[k], rel=RTOL), (k, ra, rb)


def test_ensemble_equals_solo_runs(tmp_path: Path) -> None:
    model_cfg, ms = members(tmp_path / "ens")
    results = train_ensemble(model_cfg, ms)
    for m, res in zip(ms, results, strict=True):
        assert isinstance(res, TrainResult)
        solo_dir = tmp_path / f"solo{m.train_cfg.seed}"
        solo = train(model_cfg, m.train_cfg, m.train_tokens, m.val_tokens, solo_dir)
        assert_same_curve(lines(m.out_dir), lines(solo_dir))
        assert res.val_loss == pytest.approx(solo.val_loss, rel=RTOL)
        assert (res.steps, res.tokens, res.params) == (solo.steps, solo.tokens, solo.params)
        a, b = load_checkpoint(m.out_dir / "checkpoint.pt"), load_checkpoint(solo_dir / "checkpoint.pt")
        assert a.keys() == b.keys()
        assert torch.equal(a["rng_state"], b["rng_state"])
        assert (a["step"], a["model_config"], a["train_config"]) == (b["step"], b["model_config"], b["train_config"])
        assert a["model"].keys() == b["model"].keys()
        for k in a["model"]:
            torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-6)
        assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
        for idx, st in b["optimizer"]["state"].items():
            for k, v in st.items():
                torch.testing.assert_close(a["optimizer"]["state"][idx][k], v, rtol=1e-4, atol=1e-8)
    # The members really are different runs.
    assert len({lines(m.out_dir)[-1]["train_loss"] for m in ms}) == 3


def test_ensemble_resume_equals_uninterrupted_and_solo_can_finish_it(tmp_path: Path) -> None:
    model_cfg, whole = members(tmp_path / "whole", seeds=(3, 4))
    train_ensemble(model_cfg, whole)
    _, cut = members(tmp_path / "cut", seeds=(3, 4))

    def stop(line: dict[str, float]) -> None:
        if line["step"] == 6:
            raise KeyboardInterrupt  # after the step-4 checkpoint, before the step-8 one

    cut[0].on_step = stop
    with pytest.raises(KeyboardInterrupt):
        train_ensemble(model_cfg, cut)
    assert load_checkpoint(cut[1].out_dir / "checkpoint.pt")["step"] == 4
    # Member 0 resumes in an ensemble, member 1 alone: both reach the uninterrupted run's curve.
    again = Member(cut[0].train_cfg, cut[0].train_tokens, cut[0].val_tokens, cut[0].out_dir, resume=True)
    train_ensemble(model_cfg, [again])
    m = cut[1]
    train(model_cfg, m.train_cfg, m.train_tokens, m.val_tokens, m.out_dir, resume=True)
    for a, b in zip(cut, whole, strict=True):
        assert_same_curve(lines(a.out_dir), lines(b.out_dir))
        assert [r["step"] for r in lines(a.out_dir)] == list(range(1, 13))


def test_a_failing_member_stops_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_cfg, ms = members(tmp_path, seeds=(0, 1))
    forward = EnsembleGPT.forward
    calls = {"n": 0}

    def poisoned(self: EnsembleGPT, idx: torch.Tensor, targets: torch.Tensor) -> Any:
        losses = forward(self, idx, targets)
        if torch.is_grad_enabled():  # training, not validation
            calls["n"] += 1
            if calls["n"] >= 11:  # step 6's first micro-batch (two a step)
                losses = losses * torch.tensor([1.0, math.nan])
        return losses

    monkeypatch.setattr(EnsembleGPT, "forward", poisoned)
    good, bad = train_ensemble(model_cfg, ms)
    assert isinstance(good, TrainResult) and good.steps == 12
    assert isinstance(bad, DatadietError)
    assert str(bad).startswith("training loss became NaN or infinite at step 6; ")
    assert "(step 4)" in str(bad)
    assert load_checkpoint(ms[1].out_dir / "checkpoint.pt")["step"] == 4
    assert [r["step"] for r in lines(ms[1].out_dir)][-1] == 5


def test_members_must_match(tmp_path: Path) -> None:
    model_cfg, ms = members(tmp_path, seeds=(0, 1))
    ms[1].train_cfg = configs(1, lr="1e-2")[1]
    with pytest.raises(UsageError, match="ensemble members differ in lr; only the seed and data may differ"):
        train_ensemble(model_cfg, ms)
    drop_cfg = configs(0, dropout="0.1")[0]
    with pytest.raises(UsageError, match="dropout"):
        train_ensemble(drop_cfg, members(tmp_path, seeds=(0,))[1])
