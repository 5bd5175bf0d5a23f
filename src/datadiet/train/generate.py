"""Sampling from a trained run's model: batched, and deterministic for a seed (nanoGPT's `sample.py`).

Two layers, both used by `curate generate`, the report's prompted samples and the memorisation probe:

    from datadiet.train.generate import SampleConfig, generate, load_run_model, sample_texts
    rm = load_run_model(store, "ts@3fa2")                       # model, tokenizer, eos id of a run
    out = sample_texts(rm, ["Once upon a time"], SampleConfig(max_new_tokens=40, seed=1), num=3)
    ids = generate(rm.model, [[5, 17, 9], [5, 2]], SampleConfig(temperature=0), eos_id=rm.eos_id)

`generate` takes a batch of prompt token lists and returns the new tokens of each (not the prompt).
Temperature 0 is greedy decoding. Sample i draws from its own generator seeded by (seed, i), so its
tokens do not depend on how many other samples share the batch, nor on the batching itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from datadiet.errors import DatadietError, UsageError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from datadiet.store import Dataset, Store
    from datadiet.train.model import GPT

# Rows decoded in one forward pass. Without a KV cache each step re-reads the whole context, so the
# batch is what amortises the per-call overhead; 64 rows of 128 tokens stay under ~50 MB of activations
# for the presets up to `small`.
MAX_BATCH = 64


@dataclass(frozen=True)
class SampleConfig:
    """How to continue a prompt.

    Attributes:
        max_new_tokens: Tokens to generate per sample (fewer when it emits the end-of-text token).
        temperature: Softmax temperature; 0 means greedy (always the most likely token).
        top_k: Sample only among the K most likely tokens (None: the whole vocabulary).
        seed: Seeds sample i's generator as (seed, i): the same seed gives the same samples.
    """

    max_new_tokens: int = 100
    temperature: float = 1.0
    top_k: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int):
            raise UsageError(f"--max-tokens must be an integer, not {self.max_new_tokens!r}")
        if not 1 <= self.max_new_tokens <= 1_000_000:
            raise UsageError(f"--max-tokens must be between 1 and 1000000, not {self.max_new_tokens}")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 100 or t != t:
            raise UsageError(f"--temperature must be between 0 (greedy) and 100, not {t!r}")
        if self.top_k is not None and (isinstance(self.top_k, bool) or self.top_k < 1):
            raise UsageError(f"--top-k must be >= 1, not {self.top_k!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise UsageError(f"--seed must be an integer in [0, 2**63), not {self.seed!r}")


def _generator(seed: int, index: int) -> torch.Generator:
    # Mix (seed, index) into one 63-bit seed (splitmix-style constants) so neighbouring seeds and
    # indices give unrelated streams.
    g = torch.Generator(device="cpu")
    g.manual_seed((seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + 1) % (2**63))
    return g


def generate(
    model: GPT,
    prompts: Sequence[Sequence[int]],
    cfg: SampleConfig | None = None,
    *,
    eos_id: int | None = None,
    device: str | torch.device | None = None,
) -> list[list[int]]:
    """Continue each prompt; return the new token ids of each, in the prompts' order.

    Prompts of equal length are decoded together in batches of up to `MAX_BATCH` rows (the model
    has learned positions and no padding mask, so rows of different lengths are never mixed, which
    keeps every row's result exactly what it would be alone). Prompt i uses generator (seed, i).

    Args:
        model: A GPT, e.g. `load_run_model(...).model`; it is put in eval mode.
        prompts: Token id lists; an empty prompt is not allowed (start it with the end-of-text id,
            as every training document follows one).
        cfg: Sampling settings (default: `SampleConfig()`).
        eos_id: Stop a sample when it emits this id (the id is not returned); None never stops early.
        device: Where to run (default: where the model's weights are).

    Raises:
        UsageError: A prompt is empty or holds an id outside the model's vocabulary.
    """
    cfg = cfg or SampleConfig()
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    vocab = model.cfg.vocab_size
    for i, p in enumerate(prompts):
        if not len(p):
            raise UsageError(f"prompt {i} is empty; start it with the end-of-text token id")
        bad = [t for t in p if not 0 <= int(t) < vocab]
        if bad:
            raise UsageError(f"prompt {i} holds token id {bad[0]}, outside the model's vocabulary of {vocab}")
    model.eval()
    results: list[list[int]] = [[] for _ in prompts]
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_length.setdefault(len(p), []).append(i)
    for rows in by_length.values():
        for start in range(0, len(rows), MAX_BATCH):
            chunk = rows[start : start + MAX_BATCH]
            outs = _decode(model, [prompts[i] for i in chunk], chunk, cfg, eos_id, dev)
            for i, o in zip(chunk, outs, strict=True):
                results[i] = o
    return results


@torch.no_grad()
def _decode(
    model: GPT,
    prompts: Sequence[Sequence[int]],
    rows: Sequence[int],
    cfg: SampleConfig,
    eos_id: int | None,
    device: torch.device,
) -> list[list[int]]:
    """Continue prompts of one length as one batch; ROWS are their indices (which seed each generator)."""
    block = model.cfg.block_size
    gens = [_generator(cfg.seed, i) for i in rows]
    idx = torch.tensor([[int(t) for t in p] for p in prompts], dtype=torch.long, device=device)  # (B, T)
    out: list[list[int]] = [[] for _ in rows]
    live = list(range(len(rows)))  # rows still generating; a finished row leaves the batch
    for _ in range(cfg.max_new_tokens):
        logits, _ = model(idx[:, -block:])  # crop to the context the model was trained on
        nxt = _pick(logits[:, -1, :].float(), cfg, [gens[b] for b in live])  # (B,)
        keep = [b for b, t in enumerate(nxt) if eos_id is None or t != eos_id]
        for b in keep:
            out[live[b]].append(nxt[b])
        if not keep:
            break
        if len(keep) < len(live):
            idx, live, nxt = idx[keep], [live[b] for b in keep], [nxt[b] for b in keep]
        idx = torch.cat([idx, torch.tensor(nxt, dtype=torch.long, device=device)[:, None]], dim=1)
    return out


def _pick(last: torch.Tensor, cfg: SampleConfig, gens: Sequence[torch.Generator]) -> list[int]:
    """The next token of each row of LAST (B, vocab): argmax at temperature 0, else a seeded draw."""
    if cfg.temperature == 0:
        return [int(t) for t in last.argmax(dim=-1).tolist()]
    last = last / cfg.temperature
    if cfg.top_k is not None and cfg.top_k < last.size(-1):
        kth = torch.topk(last, cfg.top_k, dim=-1).values[:, -1:]  # (B, 1)
        last = last.masked_fill(last < kth, float("-inf"))
    probs = torch.softmax(last, dim=-1).cpu()
    # One draw per row from that row's own generator: independent of the batch's make-up.
    return [int(torch.multinomial(probs[b], 1, generator=g).item()) for b, g in enumerate(gens)]


@dataclass(frozen=True)
class RunModel:
    """A run's trained model with the tokenizer and end-of-text id it was trained with.

    Attributes:
        ref: The run, `NAME@VERSION`.
        model: The GPT in eval mode, loaded from the run's final checkpoint.
        tokenizer: The run's `tokenizers.Tokenizer`.
        eos_id: The id separating documents in training (the end-of-text token).
        eos_token: That token's text.
    """

    ref: str
    model: GPT
    tokenizer: Tokenizer
    eos_id: int
    eos_token: str

    def encode(self, text: str) -> list[int]:
        """TEXT as a document start: the end-of-text id (it precedes every training document), then its ids."""
        return [self.eos_id, *self.tokenizer.encode(text, add_special_tokens=False).ids]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=False))


def run_tokenizer_path(store: Store, run: Dataset) -> Path:
    """The `tokenizer.json` a run was trained with: the copy in the run's folder, else the store's.

    Raises:
        DatadietError: The run was trained with an external file that is no longer known.
    """
    from datadiet.train.pipeline import CONFIG_FILE, TOKENIZER_FILE

    if TOKENIZER_FILE in run.manifest.files:
        return run.file(TOKENIZER_FILE)
    key = str(run.manifest.params.get("tokenizer", ""))
    if key.startswith("file:"):
        config = run.file(CONFIG_FILE)
        raise DatadietError(
            f"run {run.ref} was trained with an external tokenizer file ({key}) that the run does not keep "
            f"(see {config}); retrain it with this version of datadiet"
        )
    return store.resolve(key, kind="tokenizers").file(TOKENIZER_FILE)


def load_run_model(store: Store, ref: str, device: str | torch.device = "cpu") -> RunModel:
    """Load a published run's model, tokenizer and end-of-text id.

    Args:
        store: The store holding the run.
        ref: The run, `NAME[@VERSION]`.
        device: Where to put the weights.

    Raises:
        RefError: No such run.
        DatadietError: Its checkpoint or tokenizer cannot be read.
    """
    from datadiet.schema import EOT
    from datadiet.train.checkpoint import CHECKPOINT_FILE, load_checkpoint
    from datadiet.train.model import GPT, GPTConfig
    from datadiet.train.pipeline import CONFIG_FILE
    from datadiet.train.tokenizer import load_tokenizer

    run = store.resolve(ref, kind="runs")
    config = json.loads(run.file(CONFIG_FILE).read_text(encoding="utf-8"))
    model = GPT(GPTConfig(**config["model"]))
    state = load_checkpoint(run.file(CHECKPOINT_FILE), map_location=device)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    tok = load_tokenizer(run_tokenizer_path(store, run))
    eos_token = str(config.get("eos_token") or EOT)
    eos = tok.token_to_id(eos_token)
    if eos is None:
        raise DatadietError(f"run {run.ref}'s tokenizer has no end-of-text token {eos_token!r}")
    return RunModel(ref=run.ref, model=model, tokenizer=tok, eos_id=int(eos), eos_token=eos_token)


@dataclass(frozen=True)
class Sample:
    """One continuation of a text prompt.

    Attributes:
        prompt: The prompt text.
        index: Which sample of the call it is (it seeded the generator with (seed, index)).
        text: The generated text, prompt excluded.
        tokens: The generated token ids.
        finished: Whether it ended with the end-of-text token (else it ran out of `max_new_tokens`).
    """

    prompt: str
    index: int
    text: str
    tokens: list[int]
    finished: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "index": self.index,
            "text": self.text,
            "tokens": self.tokens,
            "finished": self.finished,
        }


def sample_texts(
    rm: RunModel, prompts: Sequence[str], cfg: SampleConfig | None = None, *, num: int = 1
) -> list[Sample]:
    """NUM continuations of each text prompt, each starting a new document (after the end-of-text token).

    Args:
        rm: The run's model, from `load_run_model`.
        prompts: Texts to continue; "" samples a document from scratch.
        cfg: Sampling settings.
        num: Samples per prompt; sample k of prompt p has index p * num + k.

    Raises:
        UsageError: `num` is below 1.
    """
    cfg = cfg or SampleConfig()
    if isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= 100_000:
        raise UsageError(f"--num must be between 1 and 100000, not {num!r}")
    ids = [rm.encode(p) for p in prompts for _ in range(num)]
    outs = generate(rm.model, ids, cfg, eos_id=rm.eos_id)
    samples = []
    for i, toks in enumerate(outs):
        finished = len(toks) < cfg.max_new_tokens
        samples.append(Sample(prompts[i // num], i, rm.decode(toks), toks, finished))
    return samples
