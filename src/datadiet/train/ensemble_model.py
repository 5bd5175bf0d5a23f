"""E copies of `GPT` as one module: every weight stacked along a leading ensemble dimension.

    members = [GPT(cfg) for each seed]                 # built exactly as a solo run builds its model
    ens = EnsembleGPT.stack(members)                   # parameters (E, ...) in GPT's order and names
    losses = ens(idx, targets)                         # idx, targets (E, B, T) -> per-member mean loss (E,)
    h = ens.hidden(idx); ens.member_logits(h, e)       # member e's logits (B*T, vocab), for evaluation
    ens.member_state(e)                                # member e's `GPT.state_dict()`, keys and shapes as solo

Each member reads only its own slice of every weight and of the batch, so the members are independent
models that happen to share kernel launches: a batched matmul (`torch.bmm`) per linear layer instead of
E small ones. The arithmetic per member is the solo model's (same ops, same order), so a member's loss
differs from the solo run's only by the matmul kernels' float rounding (measured ≤ 1e-6 relative per step
in float32; see docs/benchmarks.md). Dropout is not supported: a solo run's dropout masks come from one
global RNG stream that a batched kernel cannot reproduce per member, so ensembles need `dropout == 0`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from datadiet.errors import UsageError
from datadiet.train.model import GPT, GPTConfig, lm_cross_entropy

# The LayerNorm epsilon of torch.nn.LayerNorm, which the solo model uses.
LN_EPS = 1e-5


class _Weight(nn.Module):
    """Holds one stacked weight so parameter names match `GPT`'s (`blocks.0.attn.qkv.weight`)."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)


def _linear(x: torch.Tensor, w: _Weight) -> torch.Tensor:
    """(E, N, in) @ (E, out, in)^T -> (E, N, out): each member's `F.linear` as one batched matmul."""
    return torch.bmm(x, w.weight.transpose(1, 2))


def _layer_norm(x: torch.Tensor, w: _Weight) -> torch.Tensor:
    """Bias-free LayerNorm of (E, N, C) with a gain per member (E, C)."""
    return F.layer_norm(x, (x.shape[-1],), eps=LN_EPS) * w.weight[:, None, :]


class _Pair(nn.Module):
    """Two stacked weights under GPT's names: `qkv`/`proj` of attention or `fc`/`proj` of the MLP."""

    def __init__(self, first: str, w1: torch.Tensor, w2: torch.Tensor) -> None:
        super().__init__()
        self.first = first
        setattr(self, first, _Weight(w1))
        self.proj = _Weight(w2)

    @property
    def inner(self) -> _Weight:
        w: _Weight = getattr(self, self.first)
        return w


class _Block(nn.Module):
    def __init__(self, weights: dict[str, torch.Tensor], prefix: str, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head

        def take(name: str) -> _Weight:
            return _Weight(weights[f"{prefix}.{name}.weight"])

        self.ln_1 = take("ln_1")
        self.attn = _Pair("qkv", weights[f"{prefix}.attn.qkv.weight"], weights[f"{prefix}.attn.proj.weight"])
        self.ln_2 = take("ln_2")
        self.mlp = _Pair("fc", weights[f"{prefix}.mlp.fc.weight"], weights[f"{prefix}.mlp.proj.weight"])

    def forward(self, x: torch.Tensor, B: int, T: int) -> torch.Tensor:
        E, N, C = x.shape  # members, tokens per member (B * T), channels
        H = self.n_head
        q, k, v = _linear(_layer_norm(x, self.ln_1), self.attn.inner).split(C, dim=2)  # each (E, N, C)
        # (E, B*T, C) -> (E*B, H, T, C/H): the members' sequences are just more sequences to attention.
        q, k, v = (t.reshape(E * B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (E*B, H, T, C/H)
        y = y.transpose(1, 2).reshape(E, N, C)
        x = x + _linear(y, self.attn.proj)
        h = F.gelu(_linear(_layer_norm(x, self.ln_2), self.mlp.inner))  # (E, N, 4C)
        return x + _linear(h, self.mlp.proj)


class EnsembleGPT(nn.Module):
    """E independent GPTs of one shape whose weights are stacked (E, ...) and stepped together.

    Build with `EnsembleGPT.stack(members)`; `named_parameters()` yields GPT's names in GPT's order,
    each with a leading ensemble dimension, so one optimizer over it equals E solo optimizers.
    """

    def __init__(self, cfg: GPTConfig, weights: dict[str, torch.Tensor], ce_chunk: int = 0) -> None:
        super().__init__()
        if cfg.dropout:
            raise UsageError("an ensemble cannot reproduce solo dropout masks; train runs with dropout > 0 alone")
        self.cfg = cfg
        self.ce_chunk = ce_chunk
        self.wte = _Weight(weights["wte.weight"])  # (E, padded_vocab, C), tied with the output layer
        self.wpe = _Weight(weights["wpe.weight"])  # (E, block_size, C)
        self.blocks = nn.ModuleList(_Block(weights, f"blocks.{i}", cfg) for i in range(cfg.n_layer))
        self.ln_f = _Weight(weights["ln_f.weight"])
        self.size = int(self.wte.weight.shape[0])
        self._trunk: Callable[[torch.Tensor], torch.Tensor] = self.hidden

    def compile_trunk(self) -> None:
        """Run `hidden` through `torch.compile` from now on (`TrainConfig.compile`).

        Only the trunk: the per-member chunked loss after it is a custom autograd function with a
        data-dependent count, at which `torch.compile` would break the graph anyway.
        """
        self._trunk = torch.compile(self.hidden)

    @classmethod
    def stack(cls, members: list[GPT], ce_chunk: int = 0) -> EnsembleGPT:
        """Stack the weights of same-shaped solo models (copied; the members are not used afterwards)."""
        cfg = members[0].cfg
        if any(m.cfg != cfg for m in members):
            raise UsageError("ensemble members must share one model shape")
        names = [n for n, _ in members[0].named_parameters()]
        weights = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in members]) for n in names}
        ens = cls(cfg, weights, ce_chunk=ce_chunk)
        assert [n for n, _ in ens.named_parameters()] == names, "parameter order must match GPT's"
        return ens

    def load_members(self, states: list[dict[str, torch.Tensor]]) -> None:
        """Overwrite every member's weights from solo `GPT.state_dict()`s (one per member, in order)."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                p.copy_(torch.stack([s[name].to(p.device) for s in states]))

    def member_state(self, e: int) -> dict[str, torch.Tensor]:
        """Member e's weights as a solo `GPT.state_dict()` (the tied output matrix under both names)."""
        state = {n: p.detach()[e].clone() for n, p in self.named_parameters()}
        state["lm_head.weight"] = state["wte.weight"]  # as GPT.state_dict() lists the tied matrix twice
        return state

    def member_model(self, e: int) -> GPT:
        """Member e as a solo `GPT` on the ensemble's device (for evaluation paths written for one model)."""
        model = GPT(self.cfg).to(self.wte.weight.device)
        model.load_state_dict(self.member_state(e))
        return model

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-member mean next-token loss.

        Args:
            idx: Token ids, shape (E, B, T), member e's batch at [e].
            targets: Next tokens, shape (E, B, T); -1 marks positions to ignore.

        Returns:
            Shape (E,): member e's mean cross-entropy over its real targets, as `GPT.forward` computes it.
        """
        x = self._trunk(idx)
        return torch.stack(
            [
                lm_cross_entropy(x[e], self.wte.weight[e], targets[e].reshape(-1), self.cfg.vocab_size, self.ce_chunk)
                for e in range(x.shape[0])
            ]
        )

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """The final (normalised) hidden states of every member: idx (E, B, T) -> (E, B*T, C)."""
        E, B, T = idx.shape
        if self.cfg.block_size < T:
            raise UsageError(f"sequence of length {T} exceeds the model's block_size {self.cfg.block_size}")
        V, C = self.cfg.padded_vocab_size, self.cfg.n_embd
        # One embedding table of E*V rows: member e's ids are offset by e*V so each reads its own rows.
        offset = torch.arange(E, device=idx.device).view(E, 1, 1) * V
        tok = F.embedding(idx + offset, self.wte.weight.reshape(E * V, C))  # (E, B, T, C)
        x = (tok + self.wpe.weight[:, None, :T, :]).reshape(E, B * T, C)
        for block in self.blocks:
            x = block(x, B, T)
        return _layer_norm(x, self.ln_f)

    def member_logits(self, hidden: torch.Tensor, e: int) -> torch.Tensor:
        """Member e's logits over the real vocabulary from `hidden`'s (E, N, C) states: (N, vocab_size).

        One member at a time, so evaluation holds one member's (N x vocab) logits, as a solo run does.
        """
        return F.linear(hidden[e], self.wte.weight[e, : self.cfg.vocab_size])
