"""GPT model: shapes, initial loss, overfitting one batch, parameter and FLOP counts."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from datadiet.config import build
from datadiet.errors import UsageError
from datadiet.train.model import GPT, GPTConfig


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Tiny matmuls: a second OpenMP thread only adds barrier waits (30x slower when the CPU is shared).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_cfg(vocab_size: int = 100) -> GPTConfig:
    return GPTConfig(vocab_size=vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32)


def test_output_shapes() -> None:
    torch.manual_seed(0)
    model = GPT(small_cfg())
    idx = torch.randint(0, 100, (3, 16))
    logits, loss = model(idx)
    assert logits.shape == (3, 16, 100)
    assert loss is None
    logits, loss = model(idx[:, :5], idx[:, :5])
    assert logits.shape == (3, 5, 100)
    assert loss is not None
    assert loss.shape == ()


def test_vocab_is_padded_but_padding_gets_no_probability_or_gradient() -> None:
    torch.manual_seed(0)
    model = GPT(small_cfg(100))
    assert model.wte.weight.shape == (128, 32)
    assert model.lm_head.weight is model.wte.weight
    idx = torch.randint(0, 100, (2, 16))
    _, loss = model(idx, idx)
    assert loss is not None
    loss.backward()
    assert model.wte.weight.grad is not None
    assert torch.count_nonzero(model.wte.weight.grad[100:]).item() == 0


def test_initial_loss_is_about_ln_vocab() -> None:
    torch.manual_seed(0)
    vocab = 1000
    model = GPT(small_cfg(vocab))
    idx = torch.randint(0, vocab, (8, 16))
    _, loss = model(idx, torch.randint(0, vocab, (8, 16)))
    assert loss is not None
    assert loss.item() == pytest.approx(math.log(vocab), abs=0.05)


def test_tiny_model_overfits_one_batch() -> None:
    torch.manual_seed(0)
    model = GPT(small_cfg())
    x = torch.randint(0, 100, (4, 16))
    y = torch.randint(0, 100, (4, 16))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        _, loss = model(x, y)
        assert loss is not None
        loss.backward()
        opt.step()
        opt.zero_grad()
    # Random targets are memorised: from ln(100) = 4.6 to ~0.006 in 60 steps.
    assert loss.item() < 0.05


def test_ignore_index_positions_do_not_count() -> None:
    torch.manual_seed(0)
    model = GPT(small_cfg())
    x = torch.randint(0, 100, (1, 8))
    y = torch.randint(0, 100, (1, 8))
    masked = y.clone()
    masked[0, 4:] = -1
    _, loss_masked = model(x, masked)
    logits, _ = model(x)
    expected = torch.nn.functional.cross_entropy(logits[0, :4], y[0, :4])
    assert loss_masked is not None
    assert loss_masked.item() == pytest.approx(expected.item(), rel=1e-5)


def test_num_params_and_flops() -> None:
    model = GPT(GPTConfig(vocab_size=64, block_size=8, n_layer=2, n_head=2, n_embd=32))
    # tied token matrix 64x32 + per block (qkv 3C^2 + proj C^2 + mlp 8C^2 + 2 LayerNorm gains) + final gain
    expected = 64 * 32 + 2 * (12 * 32 * 32 + 2 * 32) + 32
    assert model.num_params() == expected == 26784
    assert model.num_params(non_embedding=False) == expected + 8 * 32
    assert model.flops_per_token() == 6 * expected + 12 * 2 * 2 * 16 * 8


def test_too_long_sequence_is_rejected() -> None:
    model = GPT(small_cfg())
    with pytest.raises(UsageError, match="block_size 16"):
        model(torch.zeros((1, 17), dtype=torch.long))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_embd": 30, "n_head": 4}, "not divisible"),
        ({"n_layer": 0}, "model n_layer must be at least 1, not 0"),
        ({"dropout": 1.0}, "model dropout must be less than 1, not 1.0"),
        ({"vocab_size": 2.5}, "model vocab_size must be a valid integer, not 2.5"),
        ({"n_embd": 2**70}, "model n_embd must be at most 65536"),
        ({"dropout": float("nan")}, "model dropout must be a finite number"),
    ],
)
def test_config_validation(kwargs: dict[str, float], message: str) -> None:
    base: dict[str, Any] = {"vocab_size": 100, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 32}
    with pytest.raises(UsageError, match=message):
        build(GPTConfig, {**base, **kwargs}, source="model")
