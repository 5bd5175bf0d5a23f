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
from torch import nn

from datadiet.config import OpenProbability, schema
from datadiet.errors import UsageError

# Embedding rows are padded to a multiple of 64 so the output projection maps onto whole GPU tiles
# (nanoGPT: 50257 -> 50304 made GPT-2 ~25% faster); padded rows never receive probability.
VOCAB_MULTIPLE = 64


# Bounds well beyond any small model (GPT-3 175B is 96 x 12288), so a typo fails here, by name.
Width = Annotated[int, Strict(), Field(ge=1, le=1 << 16)]
Depth = Annotated[int, Strict(), Field(ge=1, le=1024)]
Vocab = Annotated[int, Strict(), Field(ge=1, le=1 << 24)]
Context = Annotated[int, Strict(), Field(ge=1, le=1 << 24)]


@schema()
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

    def loss(self, idx: torch.Tensor, targets: torch.Tensor, ce_chunk: int = 0) -> torch.Tensor:
        """The mean next-token loss alone, as `forward` computes it, without returning the logits.

        Args:
            idx: Token ids, shape (B, T).
            targets: Next tokens, shape (B, T); -1 marks positions to ignore.
            ce_chunk: Rows of logits computed at a time (see `lm_cross_entropy`); 0 computes them all at once.
        """
        return lm_cross_entropy(self.hidden(idx), self.wte.weight, targets.reshape(-1), self.cfg.vocab_size, ce_chunk)

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """The final (normalised) hidden states the output layer reads: idx (B, T) -> (B*T, C).

        The trainer compiles this part alone under `compile`: the chunked loss after it is a custom
        autograd function with a data-dependent count, which `torch.compile` would break the graph at.
        """
        B, T = idx.shape
        if self.cfg.block_size < T:
            raise UsageError(f"sequence of length {T} exceeds the model's block_size {self.cfg.block_size}")
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(T, device=idx.device)))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x).view(B * T, -1)

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


def lm_cross_entropy(
    x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, vocab_size: int, chunk: int = 0
) -> torch.Tensor:
    """Mean cross-entropy of the tied output layer's logits `x @ weight.T` over the real vocabulary.

    Args:
        x: Final hidden states, shape (N, C).
        weight: The tied embedding matrix, shape (padded_vocab, C); rows past `vocab_size` are padding.
        targets: Next tokens, shape (N,); -1 marks positions to ignore.
        vocab_size: Real vocabulary size (the softmax runs over these columns only).
        chunk: 0 computes all N x vocab logits at once (as `GPT.forward`); otherwise `chunk` rows at a
            time, each chunk's loss and gradients computed together (`_ChunkedCrossEntropy`).

    Returns:
        The scalar mean loss over real targets, in float32.
    """
    if chunk <= 0 or chunk >= x.shape[0]:
        logits = F.linear(x, weight)  # (N, padded_vocab)
        if weight.shape[0] != vocab_size:
            logits = logits.masked_fill(_pad_mask(weight.shape[0], vocab_size, x.device), float("-inf"))
        return F.cross_entropy(logits.float(), targets, ignore_index=-1)
    out: torch.Tensor = _ChunkedCrossEntropy.apply(x, weight, targets, vocab_size, chunk)
    return out


def _pad_mask(padded: int, vocab_size: int, device: torch.device) -> torch.Tensor:
    mask = torch.zeros(padded, dtype=torch.bool, device=device)
    mask[vocab_size:] = True
    return mask


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Cross-entropy of a linear layer's logits, `chunk` rows at a time, gradients made in the forward pass.

    The plain path materialises the (N, V) logits, a masked copy, their log-softmax and the gradient:
    for `paper` (N = 4,096 tokens, V = 8,192) four 134 MB float32 arrays a step, each written to and read
    back from memory. Here one chunk's logits (`chunk` x V, e.g. 16 MB at 512 rows) are made, turned
    into (softmax - one-hot) / n in place and multiplied straight into the gradients of `x` and `weight`
    while still in cache (the "fused linear cross-entropy" of Liger-Kernel). The arithmetic per row is
    the plain path's; only the float summation order of the weight gradient over chunks differs.
    The padded vocabulary rows are never multiplied (they would only be masked to -inf).
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        vocab_size: int,
        chunk: int,
    ) -> torch.Tensor:
        w = weight[:vocab_size]  # (V, C): the real vocabulary
        n_valid = int((targets >= 0).sum())
        need_grad = bool(ctx.needs_input_grad[0] or ctx.needs_input_grad[1])
        grad_x = torch.empty_like(x) if need_grad else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_grad else None
        total = torch.zeros((), dtype=torch.float32, device=x.device)
        with torch.no_grad():
            for i in range(0, x.shape[0], chunk):
                xi, ti = x[i : i + chunk], targets[i : i + chunk]
                logits = F.linear(xi, w).float()  # (n, V)
                valid = ti >= 0
                safe = ti.clamp(min=0)
                lse = torch.logsumexp(logits, dim=1)
                total += ((lse - logits.gather(1, safe[:, None]).squeeze(1)) * valid).sum()
                if grad_x is None or grad_w is None:
                    continue
                # d(mean loss)/d(logits) = (softmax - onehot) / n_valid on valid rows, 0 elsewhere.
                g = logits.sub_(lse[:, None]).exp_()
                g[torch.arange(len(ti), device=ti.device), safe] -= 1.0
                g.mul_((valid.float() / max(1, n_valid))[:, None])
                g = g.to(xi.dtype) if xi.dtype != torch.float32 else g
                grad_x[i : i + chunk] = (g @ w.to(g.dtype)).to(x.dtype)
                grad_w[:vocab_size] += (g.t() @ xi.to(g.dtype)).float()
        ctx.has_grad = grad_x is not None and grad_w is not None
        if grad_x is not None and grad_w is not None:
            ctx.save_for_backward(grad_x, grad_w)
        ctx.weight_dtype = weight.dtype
        return total / max(1, n_valid)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if not ctx.has_grad:
            return None, None, None, None, None
        grad_x, grad_w = ctx.saved_tensors
        return grad_x * grad_out, (grad_w * grad_out).to(ctx.weight_dtype), None, None, None
