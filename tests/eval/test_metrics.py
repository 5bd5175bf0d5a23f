"""Validation metrics on models whose outputs are known, so every number can be computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from datadiet.errors import UsageError
from datadiet.eval import generations as G
from datadiet.schema import EOT
from datadiet.train import metrics as M
from datadiet.train.tokenizer import train_tokenizer


class Uniform(nn.Module):
    """Same logit for every token: loss ln V, and argmax picks token 0."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        return torch.zeros(*idx.shape, self.vocab), None


class Successor(nn.Module):
    """Always right on sequences where each token is the previous one plus 1 (mod V)."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        return 100.0 * nn.functional.one_hot((idx + 1) % self.vocab, self.vocab).float(), None


class Table(nn.Module):
    """Logits looked up by the input token: after token 0 uniform over {0, 1}; after token 1, p(1) = 3/4."""

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        table = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])
        return table[idx], None


def test_uniform_logits_give_log_vocab() -> None:
    vocab = 7
    tokens = np.array([0, 3, 0, 5, 0, 6, 1, 2, 0], dtype=np.uint16)  # 8 targets, 3 of them token 0
    m = M.evaluate(Uniform(vocab), tokens, block_size=4, batch_size=1, token_bytes=np.full(vocab, 2))
    assert m[M.VAL_LOSS] == pytest.approx(math.log(vocab), abs=1e-6)
    assert m[M.PERPLEXITY] == pytest.approx(vocab, rel=1e-6)
    assert m[M.STUDY_PERPLEXITY] == pytest.approx(vocab, rel=1e-6)
    assert m[M.ACCURACY] == 3 / 8
    # targets 3 0 5 0 | 6 1 2 0: two right in each row
    assert m[M.STUDY_ACCURACY] == 1.5
    assert m[M.BITS_PER_BYTE] == pytest.approx(math.log(vocab) / (2 * math.log(2)), abs=1e-6)
    assert m[M.EVAL_TOKENS] == 8
    assert m[M.EVAL_BYTES] == 16
    assert m[M.EVAL_WINDOWS] == 2


def test_always_right_model() -> None:
    tokens = np.arange(41) % 5
    m = M.evaluate(Successor(5), tokens, block_size=8, batch_size=3)
    assert m[M.VAL_LOSS] == pytest.approx(0.0, abs=1e-6)
    assert m[M.PERPLEXITY] == pytest.approx(1.0, abs=1e-6)
    assert m[M.ACCURACY] == 1.0
    assert m[M.STUDY_ACCURACY] == 8.0
    assert m[M.EVAL_TOKENS] == 40
    assert m[M.BITS_PER_BYTE] is None


def test_study_figures_on_batches_with_different_losses() -> None:
    # Windows of 2 targets: [0 0 | 0], then [0 1 | 1].
    # Row 1: targets 0, 0 after inputs 0, 0: losses ln2, ln2; argmax of a tie is 0, so 2 right.
    # Row 2: target 1 after 0 (ln2, wrong), target 1 after 1 (ln 4/3, right).
    tokens = np.array([0, 0, 0, 1, 1])
    m = M.evaluate(Table(), tokens, block_size=2, batch_size=1)
    mean = (3 * math.log(2) + math.log(4 / 3)) / 4
    assert m[M.VAL_LOSS] == pytest.approx(mean, abs=1e-6)
    assert m[M.PERPLEXITY] == pytest.approx((32 / 3) ** 0.25, abs=1e-6)
    assert m[M.ACCURACY] == 0.75
    # batch means ln2 and ln(sqrt(8/3)): mean of exp = (2 + sqrt(8/3)) / 2
    assert m[M.STUDY_PERPLEXITY] == pytest.approx((2 + math.sqrt(8 / 3)) / 2, abs=1e-6)
    assert m[M.STUDY_ACCURACY] == 1.5
    # One batch holding both rows: the study's perplexity is then the plain one.
    one = M.evaluate(Table(), tokens, block_size=2, batch_size=2)
    assert one[M.STUDY_PERPLEXITY] == pytest.approx(one[M.PERPLEXITY], abs=1e-6)


def test_capped_windows_are_evenly_spaced_and_deterministic() -> None:
    assert M.eval_windows(101, 10).tolist() == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert M.eval_windows(101, 10, max_tokens=30).tolist() == [0, 40, 90]
    m = M.evaluate(Uniform(3), np.zeros(101, dtype=np.int64), block_size=10, max_tokens=30)
    assert m[M.EVAL_TOKENS] == 30
    with pytest.raises(UsageError, match="fewer than block_size"):
        M.eval_windows(5, 10)
    with pytest.raises(UsageError, match="below one window"):
        M.eval_windows(101, 10, max_tokens=5)


def test_model_mode_is_restored() -> None:
    model = Uniform(3)
    model.train()
    M.evaluate(model, np.zeros(20, dtype=np.int64), block_size=4)
    assert model.training


class Reciter(nn.Module):
    """Emits a fixed token sequence: position t (after the start token) predicts seq[t]."""

    def __init__(self, seq: list[int], vocab: int) -> None:
        super().__init__()
        self.seq = torch.tensor(seq)
        self.vocab = vocab

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        t = torch.arange(idx.shape[1]).clamp(max=len(self.seq) - 1)
        return 1000.0 * nn.functional.one_hot(self.seq[t], self.vocab).float().expand(idx.shape[0], -1, -1), None


def test_generations_distinct_and_memorisation() -> None:
    train = [
        "once upon a time there was a little cat who liked to sit in the sun all day long",
        "the dog ran to the park and played with a red ball until the evening came",
    ]
    tok = train_tokenizer([*train, EOT], vocab_size=300)
    seq = tok.encode(train[0]).ids
    model = Reciter(seq, tok.get_vocab_size())
    out = G.sample_generations(model, tok, 2, len(seq), 0, train, block_size=64)
    assert out["samples"] == [train[0], train[0]]
    words = train[0].split(" ")
    assert out[G.DISTINCT_1] == pytest.approx(len(set(words)) / (2 * len(words)))
    assert out[G.DISTINCT_2] == pytest.approx((len(words) - 1) / (2 * (len(words) - 1)))
    assert out[G.MEMORISED_8GRAM_SHARE] == 1.0
    fresh = G.sample_generations(model, tok, 1, len(seq), 0, train[1:], block_size=64)
    assert fresh[G.MEMORISED_8GRAM_SHARE] == 0.0


def test_token_bytes_are_exact_utf8_and_the_separator_is_one_byte() -> None:
    texts = ["héllo wörld — ünïcode", "hello world hello", "naïve café"]
    tok = train_tokenizer([*texts, EOT], vocab_size=280)
    lengths = M.token_byte_lengths(tok)
    assert lengths[tok.token_to_id(EOT)] == M.SEPARATOR_BYTES == 1
    for text in texts:
        ids = tok.encode(text).ids
        # Summed per token, even where a token ends inside a multi-byte character.
        assert int(lengths[ids].sum()) == len(text.encode("utf-8"))


def test_bits_per_byte_counts_exactly_the_scored_targets() -> None:
    text = "the cat sat on the mat. " * 30
    tok = train_tokenizer([text, EOT], vocab_size=300)
    eot = tok.token_to_id(EOT)
    doc = tok.encode(text).ids
    tokens = np.array([eot, *doc, eot, *doc, eot], dtype=np.int64)
    lengths = M.token_byte_lengths(tok)
    vocab = tok.get_vocab_size()
    for cap in (None, 16):  # a capped evaluation scores fewer targets: their own bytes, not an average
        m = M.evaluate(Uniform(vocab), tokens, block_size=8, batch_size=4, max_tokens=cap, token_bytes=lengths)
        starts = M.eval_windows(tokens.size, 8, cap)
        targets = tokens[starts[:, None] + np.arange(1, 9)]
        assert m[M.EVAL_TOKENS] == targets.size
        assert m[M.EVAL_BYTES] == int(lengths[targets].sum())
        assert m[M.BITS_PER_BYTE] == pytest.approx(
            m[M.VAL_LOSS] * m[M.EVAL_TOKENS] / (math.log(2) * m[M.EVAL_BYTES]), rel=1e-12
        )
    assert M.bits_per_byte(10.0, 0) is None
