"""The one configuration schema (datadiet.config): the sweep TOML, `--set`, presets and numeric bounds.

Every case runs the real CLI and checks the one-line error and exit code 2; none needs a store
with data, because configuration is validated before anything is resolved or run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.config import parse_literal
from datadiet.train.config import PRESETS, TrainConfig

BIG = "9" * 30  # beyond 64 bits


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('sizes = "0.5"', "sizes must be a list, not '0.5'"),
        ('rates = ["a"]', "rates[0] must be a valid number, not 'a'"),
        ('nproc = "two"', "nproc must be a valid integer, not 'two'"),
        ('dedupe = "no"', "dedupe must be a valid boolean, not 'no'"),
        ("seeds = [0.5]", "seeds[0] must be a valid integer, not 0.5"),
        ("seeds = [true]", "seeds[0] must be a valid integer, not True"),
        ("sizes = []", "sizes must have at least 1 value(s)"),
        ("sizes = [1.5]", "sizes[0] must be at most 1, not 1.5"),
        ("rates = [nan]", "rates[0] must be a finite number, not nan"),
        ("near = inf", "near must be a finite number, not inf"),
        (f"seeds = [{BIG}]", "seeds[0] must be at most 9223372036854775807"),
        ("seeds = [-1]", "seeds[0] must be at least 0, not -1"),
        ("steps = 0", "steps must be at least 1, not 0"),
        ("threshold = 1", "threshold must be less than 1, not 1"),
        ("vocab = 9223372036854775807", "vocab must be at most 1048576"),
        ('preset = ["tiny"]', "preset must be a valid string"),
        ("sweep = 3", "[sweep] must be a table of settings, not int"),
        ("[sweep.overrides]\nlr = 1e309", "train setting lr must be a valid number, not 'inf'"),
        ('[sweep.overrides]\nlr = "fast"', "train setting lr must be a valid number, not 'fast'"),
        ("[sweep.overrides]\nn_embd = 1000000", "model setting n_embd must be at most 65536"),
    ],
)
def test_sweep_toml_is_type_checked(runner: CliRunner, tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "sweep.toml"
    head = '[sweep]\nbase = "a"\nval = "b"\n'
    path.write_text(line + "\n" if line.startswith("sweep =") else head + line + "\n")
    result = runner.invoke(app, ["sweep", "--config", str(path), "--dry-run", "--store", str(tmp_path / "s")])
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "lr=1e309"], "train setting lr must be a finite number, not inf"),
        (["--set", "n_embd=1000000"], "model setting n_embd must be at most 65536"),
        (["--set", "n_embd=8192", "--set", "n_layer=1000"], "GiB of memory to train"),
        (["--set", f"seed={BIG}"], "train setting seed must be at most 9223372036854775807"),
        (["--set", "compile=no"], "train setting compile must be a valid boolean, not 'no'"),
        (["--seeds", "0.5"], "--seeds must be comma-separated integers"),
        (["--seeds", BIG], "--seeds[0] must be at most 9223372036854775807"),
        (["--sizes", "inf"], "--sizes[0] must be a finite number, not inf"),
        (["--steps", BIG], "--steps must be at most 9223372036854775807"),
        (["--nproc", BIG], "--nproc must be at most 9223372036854775807"),
    ],
)
def test_sweep_options_are_bounded(runner: CliRunner, tmp_path: Path, args: list[str], message: str) -> None:
    cmd = ["sweep", "--base", "a", "--val", "b", "--preset", "tiny", "--dry-run", *args]
    result = runner.invoke(app, [*cmd, "--store", str(tmp_path / "s")])
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output


@pytest.mark.parametrize(
    "args",
    [
        ["head", "x", "-n", BIG],
        ["clusters", "x", "--top", BIG],
        ["corpus", "--seed", BIG],
        ["duplicate", "x", "--rate", "0.1", "--seed", BIG],
        ["subset", "x", "--fraction", "0.5", "--seed", BIG],
        ["eval", "x", "--val", "y", "--samples", BIG],
        ["train", "x", "--val", "y", "--seed", BIG],
        ["generate", "x", "--seed", BIG],
        ["ingest", "f.txt", "-n", "x", "--max-doc-bytes", BIG],
        ["subset", "x", "--fraction", "inf"],
        ["duplicate", "x", "--rate", "nan"],
    ],
)
def test_every_number_option_is_bounded(runner: CliRunner, tmp_path: Path, args: list[str]) -> None:
    """An integer beyond 64 bits (or a non-finite float) is refused by name before the command runs."""
    result = runner.invoke(app, [*args, "--store", str(tmp_path / "s")])
    assert result.exit_code == 2, result.output
    assert ("at most 9223372036854775807" in result.output) or ("finite number" in result.output), result.output
    assert not (tmp_path / "s").exists()  # refused before the store was even opened


def test_presets_pass_their_own_schema() -> None:
    for name, preset in PRESETS.items():
        assert TrainConfig(**preset.train.to_dict()) == preset.train, name


def test_set_values_are_literals_not_code() -> None:
    assert parse_literal("3e-4") == 3e-4 and parse_literal("TRUE") is True and parse_literal("epoch") == "epoch"
    assert parse_literal("__import__('os').system('true')") == "__import__('os').system('true')"
    assert parse_literal("1e309") == float("inf")  # refused later by the schema, by name


def _configs() -> list[tuple[Any, dict[str, Any], str]]:
    from datadiet.curate.corpus.op import CorpusConfig
    from datadiet.curate.corrupt.op import CorruptConfig
    from datadiet.curate.dedupe.minhash import MinhashConfig
    from datadiet.curate.duplicate.op import DuplicateConfig
    from datadiet.curate.filter.op import FilterConfig
    from datadiet.curate.ingest.op import IngestConfig
    from datadiet.curate.subset.op import SubsetConfig
    from datadiet.sweep.config import SweepConfig
    from datadiet.train.model import GPTConfig

    return [
        (SweepConfig, {"base": "a", "val": "b", "nproc": 0}, "invalid SweepConfig: nproc must be at least 1, not 0"),
        (SweepConfig, {"base": "a", "val": "b", "colour": 1}, "invalid SweepConfig: 'colour' is not a known setting"),
        (SweepConfig, {"base": "a"}, "invalid SweepConfig: val is required"),
        (TrainConfig, {"steps": 0}, "invalid TrainConfig: steps must be at least 1, not 0"),
        (TrainConfig, {"lr": "fast"}, "invalid TrainConfig: lr must be a valid number, not 'fast'"),
        (GPTConfig, {"vocab_size": 0, "block_size": 8, "n_layer": 1, "n_head": 1, "n_embd": 8}, "vocab_size must be"),
        (MinhashConfig, {"num_perm": "many"}, "--num-perm must be an integer from 1 to 4096, not 'many'"),
        (DuplicateConfig, {"rate": 2}, "--rate must be between 0 and 1, not 2; e.g. --rate 0.25"),
        (DuplicateConfig, {"rate": 0.5, "docs": ["a", ""]}, "docs must be a non-empty list of document ids"),
        (SubsetConfig, {"docs": -1}, "--docs must be at least 1, not -1"),
        (SubsetConfig, {"docs": 2**64}, "invalid SubsetConfig: docs must be at most 9223372036854775807"),
        (CorpusConfig, {"stories": "10"}, "stories must be an integer >= 1, got '10'; pass e.g. stories=1000"),
        (CorruptConfig, {"kind": "typos", "rate": "x"}, "--rate must be a number, not 'x'"),
        (CorruptConfig, {"kind": "typos", "rate": 0.1, "seed": 1.5}, "--seed must be a whole number, not 1.5"),
        (CorruptConfig, {"kind": "typos"}, "invalid CorruptConfig: rate is required"),
        (FilterConfig, {"where": "length(text) > 1"}, "--where must be a list of SQL conditions"),
        (FilterConfig, {"where": [5]}, "--where must not be empty"),
        (FilterConfig, {"rules": ["gopher"]}, "invalid FilterConfig: rules[0] must be an instance of Rule"),
        (IngestConfig, {"max_doc_bytes": 1.5}, "--max-doc-bytes must be a whole number, not 1.5"),
        (IngestConfig, {"max_doc_bytes": 0}, "--max-doc-bytes must be >= 1, not 0"),
        (IngestConfig, {"separator": None}, "--separator must be text, not None"),
        (IngestConfig, {"extra_columns": [("n", "int64")]}, "extra_columns must be (name, Arrow type) pairs"),
    ]


@pytest.mark.parametrize("case", range(22))
def test_a_config_built_in_python_says_what_is_wrong_in_one_line(case: int) -> None:
    # pydantic's ValidationError (a ValueError of many lines) never leaves a config class.
    from pydantic import ValidationError

    from datadiet.errors import UsageError

    cls, values, message = _configs()[case]
    with pytest.raises(UsageError) as err:
        cls(**values)
    assert not isinstance(err.value, ValidationError)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_numpy_numbers_give_the_parameters_of_plain_ones() -> None:
    # An operation's config computed with numpy keeps the version id of the same plain values.
    import numpy as np

    from datadiet.curate.corrupt.op import CorruptConfig
    from datadiet.curate.dedupe.minhash import MinhashConfig
    from datadiet.curate.duplicate.op import DuplicateConfig
    from datadiet.curate.subset.op import SubsetConfig

    made = CorruptConfig(kind="typos", rate=np.float32(1), seed=np.int64(3)).to_params()
    assert made == CorruptConfig(kind="typos", rate=1.0, seed=3).to_params() and isinstance(made["rate"], float)
    assert SubsetConfig(docs=np.int64(7), seed=np.uint32(3)).to_params() == SubsetConfig(docs=7, seed=3).to_params()
    made = DuplicateConfig(rate=1, pool=np.int32(2), seed=np.int64(0)).to_params()
    assert made == DuplicateConfig(rate=1.0, pool=2, seed=0).to_params() and isinstance(made["rate"], float)
    assert (
        MinhashConfig(num_perm=np.int64(64), threshold=np.float32(0.5)).params()
        == MinhashConfig(num_perm=64, threshold=float(np.float32(0.5))).params()
    )
