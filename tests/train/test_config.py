"""TrainConfig presets and `--set key=value` overrides."""

from __future__ import annotations

import pytest

from datadiet.errors import UsageError
from datadiet.train.config import PRESETS, TrainConfig, resolve_config
from datadiet.train.model import GPT


def test_paper_preset_is_the_original_study() -> None:
    model, train = resolve_config("paper", 50257, {})
    assert (model.n_layer, model.n_head, model.n_embd, model.block_size) == (4, 4, 128, 128)
    assert model.vocab_size == 50257
    assert (train.steps, train.batch_size, train.lr, train.min_lr, train.warmup) == (1000, 32, 1e-3, 1e-4, 100)
    assert (train.beta2, train.weight_decay, train.grad_clip) == (0.99, 0.1, 1.0)


@pytest.mark.parametrize(("preset", "low", "high"), [("small", 18e6, 25e6), ("base", 84e6, 95e6)])
def test_preset_sizes(preset: str, low: float, high: float) -> None:
    model_cfg, _ = resolve_config(preset, 8192, {})
    n = GPT(model_cfg).num_params() if preset == "small" else _count(model_cfg.n_layer, model_cfg.n_embd, 8192)
    assert low <= n <= high


def _count(layers: int, width: int, vocab: int) -> int:
    return vocab * width + layers * (12 * width * width + 2 * width) + width


def test_overrides_are_typed_literals() -> None:
    model, train = resolve_config(
        "tiny", 300, {"lr": "3e-4", "steps": "7", "sampler": "epoch", "compile": "true", "n_layer": "3", "min_lr": "0"}
    )
    assert train.lr == 3e-4
    assert train.steps == 7
    assert train.sampler == "epoch"
    assert train.compile is True
    assert model.n_layer == 3
    assert train.min_lr == 0.0
    assert isinstance(train.min_lr, float)
    assert resolve_config("tiny", 300, {"sampler": "'epoch'"})[1].sampler == "epoch"


def test_block_size_override_reaches_the_model() -> None:
    model, train = resolve_config("tiny", 300, {"block_size": "32"})
    assert model.block_size == train.block_size == 32


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": "1.5"}, "steps must be a valid integer, not 1.5"),
        ({"lr": "fast"}, "lr must be a valid number, not 'fast'"),
        ({"compile": "1"}, "compile must be a valid boolean"),
        ({"sampler": "3"}, "sampler must be 'random' or 'epoch', not 3"),
        ({"lr": "1e309"}, "lr must be a finite number, not inf"),
        ({"seed": "9" * 30}, "seed must be at most 9223372036854775807"),
        ({"n_embd": "1000000"}, "n_embd must be at most 65536"),
        ({"n_embd": "65536"}, "GiB of memory to train"),
        ({"batch_size": "100000000"}, "GiB of memory to train"),
        ({"stepz": "10"}, "unknown setting 'stepz'"),
        ({"vocab_size": "10"}, "unknown setting 'vocab_size'"),
        ({"steps": "0"}, "steps must be at least 1"),
        ({"sampler": "shuffle"}, "sampler must be 'random' or 'epoch'"),
        ({"min_lr": "1.0"}, "min_lr=1.0 is above lr"),
        ({"n_head": "3"}, "not divisible"),
    ],
)
def test_bad_overrides(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_config("tiny", 300, overrides)


def test_unknown_preset() -> None:
    with pytest.raises(UsageError, match="unknown preset 'huge'; choose one of paper, tiny, small, base"):
        resolve_config("huge", 300, {})


def test_to_dict_round_trips() -> None:
    for preset in PRESETS.values():
        assert TrainConfig(**preset.train.to_dict()) == preset.train


def test_the_names_the_cli_lists_are_the_configs() -> None:
    # train/__init__.py names the presets and samplers so that `--help` lists them without torch.
    import typing

    from datadiet.train import PRESET_NAMES, SAMPLERS

    assert tuple(PRESETS) == PRESET_NAMES
    assert typing.get_args(typing.get_type_hints(TrainConfig)["sampler"]) == SAMPLERS
