"""Byte-level BPE tokenizers: trained once on a base corpus and then fixed for every variant.

`train_tokenizer(texts, vocab_size)` learns GPT-2-style byte-level BPE with the `tokenizers` library
(Rust, all cores) and `<|endoftext|>` as its one special token; `load_tokenizer(path)` reads any Hugging
Face `tokenizer.json` (GPT-2's, for a faithful rerun of the original study). The CLI's
`curate tokenizer train` stores `tok.to_str()` in the store as `tokenizer.json`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from datadiet.errors import InputError, UsageError
from datadiet.schema import EOT

# 256 byte symbols + the special token are the floor; below that BPE cannot cover every input byte.
MIN_VOCAB = 257


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Learn a byte-level BPE tokenizer.

    Every byte is in the initial alphabet, so any text round-trips exactly
    (`tok.decode(tok.encode(x).ids) == x`). Training is deterministic: merges are chosen by count with
    ties broken by the pair itself.

    Args:
        texts: Training documents.
        vocab_size: Final vocabulary size, special token included (e.g. 8192).

    Raises:
        UsageError: `vocab_size` is below 257 or above 2**31 - 1.
    """
    if isinstance(vocab_size, bool) or not MIN_VOCAB <= vocab_size < 2**31:
        raise UsageError(f"--vocab {vocab_size} is out of range; give a vocabulary of at least {MIN_VOCAB}, e.g. 8192")
    tok = Tokenizer(models.BPE())
    # GPT-2's split regex and byte-to-unicode mapping; no prefix space, so decoding returns the input.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,  # a pair seen once is noise, not a subword
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a Hugging Face `tokenizer.json`.

    Args:
        path: The file (or a folder containing `tokenizer.json`).

    Raises:
        InputError: The path is missing or is not a tokenizer.json.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise InputError(f"tokenizer file {path} does not exist; pass a Hugging Face tokenizer.json to --tokenizer")
    try:
        text = path.read_text(encoding="utf-8")
        json.loads(text)
        return Tokenizer.from_str(text)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(
            f"{path} is not a Hugging Face tokenizer.json ({reason}); pass a file saved by tokenizers' Tokenizer.save"
        ) from exc


def eot_id(tok: Tokenizer, token: str = EOT) -> int:
    """The id of the end-of-text token (`<|endoftext|>` unless `--eos-token` names another).

    Raises:
        UsageError: The tokenizer has no such token.
    """
    token_id = tok.token_to_id(token)
    if token_id is None:
        hint = (
            "name the token that ends a document in this tokenizer with --eos-token (e.g. '</s>'), or use one "
            "trained by `curate tokenizer train`"
            if token == EOT
            else "give --eos-token a token the tokenizer has (see its special tokens)"
        )
        raise UsageError(f"the tokenizer has no {token} token; {hint}")
    return int(token_id)
