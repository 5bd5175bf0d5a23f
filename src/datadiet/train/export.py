"""A run's model as a Hugging Face GPT-2 folder: `curate export-model RUN OUT --format hf`.

datadiet's GPT is GPT-2's architecture without biases (pre-LayerNorm blocks, learned positions, tied
embeddings, 4x MLP), so it maps onto `transformers`' `GPT2LMHeadModel` exactly: the missing biases
are zeros, `nn.Linear` weights are transposed into GPT-2's `Conv1D` layout, the padded embedding
rows are dropped and the activation is exact GELU (`activation_function="gelu"`; GPT-2's own is the
tanh approximation). The folder holds `config.json`, `model.safetensors`, `generation_config.json`
and the run's tokenizer (`tokenizer.json`, `tokenizer_config.json`), so

    model = transformers.AutoModelForCausalLM.from_pretrained(OUT)
    tok = transformers.AutoTokenizer.from_pretrained(OUT)

loads and generates, with logits equal to ours (tests/train/test_export_model.py). Needs the
`transformers` extra: `pip install 'datadiet[transformers]'`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from datadiet.errors import DatadietError, UsageError
from datadiet.store import Store
from datadiet.train.generate import load_run_model


def require_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise UsageError(
            "exporting a model needs the transformers extra: pip install 'datadiet[transformers]'"
        ) from None
    return transformers


def gpt2_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """Our GPT's weights under GPT-2's names and layouts (zero biases, transposed Conv1D weights)."""
    cfg = model.cfg
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    C = cfg.n_embd
    out: dict[str, torch.Tensor] = {
        "transformer.wte.weight": sd["wte.weight"][: cfg.vocab_size].clone(),  # the padded rows are not tokens
        "transformer.wpe.weight": sd["wpe.weight"].clone(),
        "transformer.ln_f.weight": sd["ln_f.weight"].clone(),
        "transformer.ln_f.bias": torch.zeros(C),
    }
    for i in range(cfg.n_layer):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            out[f"{theirs}{ln}.weight"] = sd[f"{ours}{ln}.weight"].clone()
            out[f"{theirs}{ln}.bias"] = torch.zeros(C)
        # nn.Linear stores (out, in); GPT-2's Conv1D stores (in, out).
        for src, dst, width in (
            ("attn.qkv", "attn.c_attn", 3 * C),
            ("attn.proj", "attn.c_proj", C),
            ("mlp.fc", "mlp.c_fc", 4 * C),
            ("mlp.proj", "mlp.c_proj", C),
        ):
            out[f"{theirs}{dst}.weight"] = sd[f"{ours}{src}.weight"].t().contiguous()
            out[f"{theirs}{dst}.bias"] = torch.zeros(width)
    out["lm_head.weight"] = out["transformer.wte.weight"]
    return out


def export_hf_model(store: Store, ref: str, out: Path) -> dict[str, Any]:
    """Write run REF's model and tokenizer as a GPT-2 folder at OUT (a new or empty folder); returns a summary.

    Raises:
        UsageError: OUT exists and is not empty, or the extra is missing.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty folder; give a new folder to export into")
    # The run first: a wrong name is the user's first problem whether or not the extra is installed.
    rm = load_run_model(store, ref)
    transformers = require_transformers()
    transformers.utils.logging.disable_progress_bar()  # stderr is ours: our own progress, one-line errors
    cfg = rm.model.cfg
    config = transformers.GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.block_size,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        activation_function="gelu",  # ours is exact GELU, not GPT-2's tanh approximation
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,  # nn.LayerNorm's default, which ours uses
        bos_token_id=rm.eos_id,
        eos_token_id=rm.eos_id,
        tie_word_embeddings=True,
    )
    hf = transformers.GPT2LMHeadModel(config)
    missing, unexpected = hf.load_state_dict(gpt2_state_dict(rm.model), strict=False)
    # GPT-2 keeps a causal-mask buffer per layer in some versions; any other difference is a bug.
    missing = [k for k in missing if not k.endswith(".attn.bias") and not k.endswith(".attn.masked_bias")]
    if missing or unexpected:
        raise DatadietError(f"cannot map the model onto GPT-2 (missing {missing[:3]}, unexpected {unexpected[:3]})")
    hf.eval()
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=rm.tokenizer,
        eos_token=rm.eos_token,
        bos_token=rm.eos_token,
        unk_token=rm.eos_token,
        model_max_length=cfg.block_size,
    )
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        hf.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except OSError as exc:
        raise DatadietError(f"cannot write {out}: {exc.strerror or exc}; choose another path or free space") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "run": rm.ref,
        "path": str(out),
        "format": "hf",
        "architecture": "GPT2LMHeadModel",
        "parameters": int(sum(p.numel() for p in hf.parameters())),
        "files": sorted(p.name for p in out.iterdir()),
    }
