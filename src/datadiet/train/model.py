"""A GPT decoder in one file, after nanoGPT: the model every datadiet run trains.

Pre-LayerNorm blocks without biases, causal `scaled_dot_product_attention` (flash kernels where the
device has them), learned position embeddings, a 4x GELU MLP and input/output embeddings tied into one
matrix. Built from a frozen `GPTConfig`; used by `datadiet.train.trainer.train` and by evaluation:

    model = GPT(GPTConfig(vocab_size=8192, block_size=128, n_layer=4, n_head=4, n_embd=128))
    logits, loss = model(idx, targets)
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field, Strict
from pydantic.dataclasses import dataclass as validated
from torch import nn

from datadiet.config import STRICT, OpenProbability
from datadiet.errors import UsageError

# Embedding rows are padded to a multiple of 64 so the output projection maps onto whole GPU tiles
# (nanoGPT: 50257 -> 50304 made GPT-2 ~25% faster); padded rows never receive probability.
VOCAB_MULTIPLE = 64


# Bounds well beyond any small model (GPT-3 175B is 96 x 12288), so a typo fails here, by name.
Width = Annotated[int, Strict(), Field(ge=1, le=1 << 16)]
Depth = Annotated[int, Strict(), Field(ge=1, le=1024)]
Vocab = Annotated[int, Strict(), Field(ge=1, le=1 << 24)]
Context = Annotated[int, Strict(), Field(ge=1, le=1 << 24)]


@validated(frozen=True, config=STRICT)
class GPTConfig:
    """Shape of a GPT decoder.

    Attributes:
        vocab_size: Number of real token ids (the tokenizer's vocabulary).
        block_size: Longest context the model sees (learned position embeddings).
        n_layer: Transformer blocks.
        n_head: Attention heads; must divide `n_embd`.
        n_embd: Width of the residual stream.
        dropout: Dropout probability on attention, residual and embedding outputs.
    """

    vocab_size: Vocab
    block_size: Context
    n_layer: Depth
    n_head: Depth
    n_embd: Width
    dropout: OpenProbability = 0.0

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise UsageError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}; "
                "choose --set n_embd / n_head so the width splits evenly into heads"
            )

    @property
    def padded_vocab_size(self) -> int:
        """`vocab_size` rounded up to a multiple of 64."""
        return -(-self.vocab_size // VOCAB_MULTIPLE) * VOCAB_MULTIPLE

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # batch, time, channels (n_embd)
        q, k, v = self.qkv(x).split(C, dim=2)  # each (B, T, C)
        # (B, T, C) -> (B, nh, T, hs)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads: (B, T, C)
        out: torch.Tensor = self.resid_dropout(self.proj(y))
        return out


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=False)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.dropout(self.proj(F.gelu(self.fc(x))))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)
        return out


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=False)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=False)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        out: torch.Tensor = x + self.mlp(self.ln_2(x))
        return out


class GPT(nn.Module):
    """A decoder-only transformer language model.

    Args:
        cfg: The model's shape.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.padded_vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=False)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.padded_vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied: one matrix reads and writes tokens
        pad = torch.zeros(cfg.padded_vocab_size, dtype=torch.bool)
        pad[cfg.vocab_size :] = True
        self.pad_mask: torch.Tensor
        self.register_buffer("pad_mask", pad, persistent=False)
        self.apply(self._init_weights)
        # GPT-2: residual projections scaled by 1/sqrt(2 * n_layer) so the residual stream's variance
        # stays ~1 however many blocks add into it (two additions per block).
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next-token logits for every position, and the mean cross-entropy when targets are given.

        Args:
            idx: Token ids, shape (B, T) with T <= block_size.
            targets: The next token at each position, shape (B, T); -1 marks positions to ignore.

        Returns:
            Logits of shape (B, T, vocab_size) and the mean loss over real target positions (or None).
        """
        B, T = idx.shape
        if self.cfg.block_size < T:
            raise UsageError(f"sequence of length {T} exceeds the model's block_size {self.cfg.block_size}")
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C) + (T, C) -> (B, T, C)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        logits = self.lm_head(x)  # (B, T, padded_vocab)
        if self.cfg.padded_vocab_size != self.cfg.vocab_size:
            # Padded ids are not tokens: -inf gives them exactly zero probability, so the loss is a
            # softmax over the real vocabulary only (and the padded rows get no gradient).
            logits = logits.masked_fill(self.pad_mask, float("-inf"))
        loss = None
        if targets is not None:
            # Upcast so the softmax runs in fp32 even under bf16 autocast.
            loss = F.cross_entropy(logits.view(B * T, -1).float(), targets.reshape(B * T), ignore_index=-1)
        return logits[..., : self.cfg.vocab_size], loss

    def num_params(self, non_embedding: bool = True) -> int:
        """Number of parameters; the tied token matrix counts once.

        Args:
            non_embedding: Leave out the position embeddings (they do no matmul work), as nanoGPT does.
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wpe.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (forward + backward), nanoGPT's `estimate_mfu` formula.

        6N for the weight matmuls (2 forward + 4 backward per parameter) plus 12·L·H·Q·T for the
        attention scores and their weighted sum, where Q is the head size and T the sequence length.

        Args:
            seq_len: Tokens per sequence; defaults to `block_size`.
        """
        T = seq_len or self.cfg.block_size
        L, H, Q = self.cfg.n_layer, self.cfg.n_head, self.cfg.n_embd // self.cfg.n_head
        return 6 * self.num_params() + 12 * L * H * Q * T
