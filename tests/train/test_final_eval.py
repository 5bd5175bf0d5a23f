"""The final evaluation batched across an ensemble equals each run's solo evaluation; bf16 only where it matches."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from datadiet.schema import EOT
from datadiet.train import metrics as M
from datadiet.train.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from datadiet.train.config import TrainConfig, resolve_config
from datadiet.train.ensemble import Member, train_ensemble
from datadiet.train.final_eval import (
    FINAL_EVAL_FILE,
    cached_final_eval,
    evaluate_final,
    final_eval_key,
)
from datadiet.train.grid import PlannedRun, train_batch
from datadiet.train.model import GPT, GPTConfig
from datadiet.train.tokenizer import train_tokenizer

FAST = {
    "steps": "10",
    "batch_size": "4",
    "block_size": "16",
    "eval_every": "0",
    "eval_tokens": "160",
    "checkpoint_every": "0",
    "threads": "1",
    "warmup": "2",
    "lr": "0.01",
}
# What docs/benchmarks.md promises for the batched final evaluation against the solo one: float32
# losses (and every figure made from them) within 1e-5 relative; token and byte counts exactly.
RTOL = 1e-5
EXACT = (M.EVAL_TOKENS, M.EVAL_BYTES, M.EVAL_WINDOWS, "block_size", "batch_size", M.EVAL_DTYPE)


@pytest.fixture(scope="module")
def token_bytes() -> np.ndarray:
    texts = [f"the {w} sat on the mat and the {w} ran {i} times" for i, w in enumerate(["cat", "dog", "fox"] * 20)]
    return M.token_byte_lengths(train_tokenizer([*texts, EOT], vocab_size=300))


def configs(vocab: int, seed: int, **extra: str) -> tuple[GPTConfig, TrainConfig]:
    return resolve_config("tiny", vocab, {**FAST, **extra, "seed": str(seed)})


def corpus(vocab: int, seed: int, n: int = 3000) -> np.ndarray:
    phrase = np.random.default_rng(seed).integers(0, vocab, size=120)
    return np.tile(phrase, n // 120 + 1)[:n].astype(np.uint16)


def trained(tmp_path: Path, vocab: int, seeds: tuple[int, ...] = (0, 1, 2)) -> tuple[GPTConfig, list[Member]]:
    """A few steps of an ensemble, each member on its own data and its own validation set (equal lengths)."""
    model_cfg = configs(vocab, 0)[0]
    ms = [
        Member(configs(vocab, s)[1], corpus(vocab, 10 + s), corpus(vocab, 50 + s, 1601), tmp_path / f"m{s}")
        for s in seeds
    ]
    train_ensemble(model_cfg, ms)
    return model_cfg, ms


def assert_same_metrics(a: dict[str, object], b: dict[str, object]) -> None:
    assert a.keys() == b.keys()
    for k in EXACT:
        assert a[k] == b[k], k
    for k in (*M.METRICS, M.EVAL_PRECISION_GAP):
        if b[k] is None:
            assert a[k] is None, k
        elif k in (M.ACCURACY, M.STUDY_ACCURACY):
            # Counts of arg-max hits: equal unless rounding flips a near-tie (one token at most here).
            assert a[k] == pytest.approx(b[k], abs=1.0 / float(b[M.EVAL_TOKENS]) * (1 if k == M.ACCURACY else 16)), k
        else:
            assert a[k] == pytest.approx(b[k], rel=RTOL), k


def test_batched_final_eval_equals_each_run_alone(tmp_path: Path, token_bytes: np.ndarray) -> None:
    model_cfg, ms = trained(tmp_path, token_bytes.size)
    ckpts = [checkpoint_path(m.out_dir) for m in ms]
    vals = [m.val_tokens for m in ms]
    together, seconds = evaluate_final(model_cfg, ms[0].train_cfg, ckpts, vals, token_bytes)
    assert len(together) == 3 and len(seconds) == 3 and seconds[0] == seconds[2] > 0
    for m, ckpt, got in zip(ms, ckpts, together, strict=True):
        alone, _ = evaluate_final(model_cfg, m.train_cfg, [ckpt], [m.val_tokens], token_bytes)
        assert_same_metrics(got, alone[0])
        assert got[M.EVAL_DTYPE] == "float32" and got[M.EVAL_WINDOWS] == 100
        assert got[M.BITS_PER_BYTE] == pytest.approx(
            got[M.VAL_LOSS] * got[M.EVAL_TOKENS] / (math.log(2) * got[M.EVAL_BYTES]), rel=1e-12
        )
    # Each member was scored with its own weights on its own validation set.
    assert len({round(t[M.VAL_LOSS], 6) for t in together}) == 3


def test_eval_precision_is_kept_only_where_it_matches_float32(
    tmp_path: Path, token_bytes: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_cfg, ms = trained(tmp_path, token_bytes.size, seeds=(0,))
    model = GPT(model_cfg)
    model.load_state_dict(load_checkpoint(checkpoint_path(ms[0].out_dir))["model"])
    kw = {"block_size": 16, "batch_size": 4, "token_bytes": token_bytes}
    full = M.evaluate(model, ms[0].val_tokens, **kw)
    assert (full[M.EVAL_DTYPE], full[M.EVAL_PRECISION_GAP]) == ("float32", None)
    # Allowed whatever the gap: the whole evaluation runs in bf16 (CPU autocast), and differs from fp32.
    monkeypatch.setattr(M, "EVAL_PRECISION_TOL", math.inf)
    low = M.evaluate(model, ms[0].val_tokens, amp=torch.bfloat16, **kw)
    assert low[M.EVAL_DTYPE] == "bfloat16"
    gap = low[M.EVAL_PRECISION_GAP]
    assert gap is not None and gap > 0
    assert low[M.VAL_LOSS] != full[M.VAL_LOSS]
    assert low[M.VAL_LOSS] == pytest.approx(full[M.VAL_LOSS], rel=2e-2)
    # A gap above the tolerance: float32 throughout, the very numbers of a float32 evaluation.
    monkeypatch.setattr(M, "EVAL_PRECISION_TOL", gap / 2)
    refused = M.evaluate(model, ms[0].val_tokens, amp=torch.bfloat16, **kw)
    assert refused[M.EVAL_DTYPE] == "float32"
    assert refused[M.EVAL_PRECISION_GAP] == pytest.approx(gap, rel=1e-6)
    assert {k: v for k, v in refused.items() if k != M.EVAL_PRECISION_GAP} == {
        k: v for k, v in full.items() if k != M.EVAL_PRECISION_GAP
    }


def test_runs_trained_in_bf16_evaluate_in_bf16_only_under_the_tolerance(
    tmp_path: Path, token_bytes: np.ndarray
) -> None:
    """The trainer's dtype=bfloat16 on CPU: its final evaluation keeps bf16 exactly when the check passes."""
    model_cfg, ms = trained(tmp_path, token_bytes.size, seeds=(0, 1))
    ckpts = [checkpoint_path(m.out_dir) for m in ms]
    bf16 = dataclasses.replace(ms[0].train_cfg, dtype="bfloat16")
    together, _ = evaluate_final(model_cfg, bf16, ckpts, [m.val_tokens for m in ms], token_bytes)
    fp32, _ = evaluate_final(model_cfg, ms[0].train_cfg, ckpts, [m.val_tokens for m in ms], token_bytes)
    for low, full, ckpt, m in zip(together, fp32, ckpts, ms, strict=True):
        gap = low[M.EVAL_PRECISION_GAP]
        assert gap is not None
        assert low[M.EVAL_DTYPE] == ("bfloat16" if gap <= M.EVAL_PRECISION_TOL else "float32")
        if low[M.EVAL_DTYPE] == "float32":
            assert low[M.VAL_LOSS] == pytest.approx(full[M.VAL_LOSS], rel=RTOL)
        alone, _ = evaluate_final(model_cfg, bf16, [ckpt], [m.val_tokens], token_bytes)
        assert alone[0][M.EVAL_DTYPE] == low[M.EVAL_DTYPE]
        assert alone[0][M.VAL_LOSS] == pytest.approx(low[M.VAL_LOSS], rel=1e-3)


def test_the_grid_leaves_batched_metrics_that_only_their_own_key_finds(
    tmp_path: Path, token_bytes: np.ndarray
) -> None:
    vocab = token_bytes.size
    tok_file = tmp_path / "tokenizer.json"
    texts = [f"the {w} sat on the mat and the {w} ran {i} times" for i, w in enumerate(["cat", "dog", "fox"] * 20)]
    train_tokenizer([*texts, EOT], vocab_size=300).save(str(tok_file))
    runs = []
    for s in (0, 1):
        model_cfg, cfg = configs(vocab, s)
        files = []
        for name, arr in (("train", corpus(vocab, 10 + s)), ("val", corpus(vocab, 77, 1601))):
            path = tmp_path / f"{name}{s}.bin"
            arr.tofile(path)
            files.append((str(path), "uint16"))
        runs.append(
            PlannedRun(f"r{s}", model_cfg, cfg, files[0], files[1], tmp_path / f"w{s}", False, 0, str(tok_file))
        )
    assert train_batch(runs, 1, lambda name, line: None) == {}
    for run in runs:
        ckpt = checkpoint_path(run.work)
        key = final_eval_key(run.model_cfg, run.train_cfg, ckpt, run.val_tokens[0], token_bytes)
        cached = cached_final_eval(run.work, key)
        assert cached is not None and cached[1] > 0
        val = np.fromfile(run.val_tokens[0], dtype=np.uint16)
        alone, _ = evaluate_final(run.model_cfg, run.train_cfg, [ckpt], [val], token_bytes)
        assert_same_metrics(cached[0], alone[0])
        # Another evaluation setting, or other weights, is not this result.
        assert cached_final_eval(run.work, key | {"batch_size": 8}) is None
        state = load_checkpoint(ckpt)
        state["model"]["ln_f.weight"] += 1.0
        save_checkpoint(ckpt, state)
        assert (
            cached_final_eval(
                run.work, final_eval_key(run.model_cfg, run.train_cfg, ckpt, run.val_tokens[0], token_bytes)
            )
            is None
        )
        assert (run.work / FINAL_EVAL_FILE).exists()
