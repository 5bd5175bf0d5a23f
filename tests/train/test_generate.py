"""Sampling (`datadiet.train.generate`) and `curate generate`: deterministic for a seed, batch-independent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.errors import UsageError
from datadiet.store import Store
from datadiet.train.generate import SampleConfig, generate, load_run_model, sample_texts
from datadiet.train.model import GPT, GPTConfig
from tests.helpers import cli


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32))
    # Larger weights than the init's so the distribution is far from uniform and greedy paths vary.
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(8)
    return m.eval()


def _greedy_by_hand(model: GPT, prompt: list[int], n: int) -> list[int]:
    idx = torch.tensor([prompt])
    out = []
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(idx[:, -model.cfg.block_size :])
            t = int(logits[0, -1].argmax())
            out.append(t)
            idx = torch.cat([idx, torch.tensor([[t]])], dim=1)
    return out


def test_greedy_is_argmax_and_crops_to_block_size(model: GPT) -> None:
    prompt = [1, 2, 3, 4, 5]
    got = generate(model, [prompt], SampleConfig(max_new_tokens=30, temperature=0))
    assert got == [_greedy_by_hand(model, prompt, 30)]  # 35 tokens > block_size 16: the context is cropped
    # top_k=1 sampling is greedy whatever the temperature.
    assert generate(model, [prompt], SampleConfig(max_new_tokens=30, temperature=2.0, top_k=1, seed=5)) == got


def test_seeded_sampling_is_deterministic_and_independent_of_the_batch(model: GPT) -> None:
    cfg = SampleConfig(max_new_tokens=12, temperature=1.0, seed=3)
    prompts = [[1, 2], [1, 2], [7, 8, 9], [1, 2]]
    batch = generate(model, prompts, cfg)
    assert batch == generate(model, prompts, cfg)
    # Sample i depends only on (prompt i, seed, i): alone or in any batch it is the same.
    for i, p in enumerate(prompts):
        alone = generate(model, [[0]] * i + [p], cfg)[i]
        assert alone == batch[i]
    assert batch[0] != batch[1]  # same prompt, other index: another draw
    assert generate(model, prompts, SampleConfig(max_new_tokens=12, seed=4)) != batch


def test_eos_stops_a_sample_and_is_not_returned(model: GPT) -> None:
    prompt = [4, 4, 4]
    free = generate(model, [prompt], SampleConfig(max_new_tokens=20, temperature=0))[0]
    eos = free[3]
    stopped = generate(model, [prompt, [9, 9]], SampleConfig(max_new_tokens=20, temperature=0), eos_id=eos)
    assert stopped[0] == free[: free.index(eos)]
    assert len(stopped[1]) <= 20 and eos not in stopped[1]


def test_top_k_restricts_to_the_k_most_likely(model: GPT) -> None:
    prompt = [3, 1, 4]
    with torch.no_grad():
        logits, _ = model(torch.tensor([prompt]))
    top3 = set(torch.topk(logits[0, -1], 3).indices.tolist())
    firsts = {generate(model, [prompt], SampleConfig(max_new_tokens=1, top_k=3, seed=s))[0][0] for s in range(40)}
    assert firsts <= top3 and len(firsts) > 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": 0}, "--max-tokens"),
        ({"temperature": -0.5}, "--temperature"),
        ({"temperature": float("nan")}, "--temperature"),
        ({"top_k": 0}, "--top-k"),
        ({"seed": -1}, "--seed"),
    ],
)
def test_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        SampleConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_prompts(model: GPT) -> None:
    with pytest.raises(UsageError, match="empty"):
        generate(model, [[]])
    with pytest.raises(UsageError, match="outside the model's vocabulary"):
        generate(model, [[1, 50]])


@pytest.mark.slow
def test_curate_generate(runner: CliRunner, store_path: Path) -> None:
    cli(runner, "corpus", "--stories", "200", "--val-stories", "20", "--name", "c")
    cli(runner, "tokenizer", "train", "c-train", "--vocab", "300")
    run = cli(runner, "train", "c-train", "--val", "c-val", "--steps", "20", "--set", "threads=1")
    assert (Path(run["path"]) / "tokenizer.json").is_file()  # the run keeps its tokenizer
    args = ["generate", run["ref"], "-p", "Once upon", "-p", "Tom", "--num", "2", "--max-tokens", "15", "--seed", "7"]
    first = cli(runner, *args)
    assert first == cli(runner, *args)
    assert [s["prompt"] for s in first["samples"]] == ["Once upon", "Once upon", "Tom", "Tom"]
    assert [s["index"] for s in first["samples"]] == [0, 1, 2, 3]
    assert all(len(s["tokens"]) <= 15 for s in first["samples"])
    # The library call gives exactly what the command printed.
    rm = load_run_model(Store(store_path), run["ref"])
    lib = sample_texts(rm, ["Once upon", "Tom"], SampleConfig(max_new_tokens=15, seed=7), num=2)
    assert [s.to_dict() for s in lib] == first["samples"]
    greedy = cli(runner, "generate", "c-train", "-t", "0", "--max-tokens", "10", "--num", "2")
    assert greedy["samples"][0]["tokens"] == greedy["samples"][1]["tokens"]
    plain = runner.invoke(app, ["generate", "c-train", "--max-tokens", "5"])
    assert plain.exit_code == 0 and "sample 0" in plain.stdout

    for bad, message in [
        (["--temperature", "-1"], "--temperature"),
        (["--num", "0"], "--num"),
        (["--top-k", "0"], "--top-k"),
        (["--max-tokens", "0"], "--max-tokens"),
    ]:
        result = runner.invoke(app, ["generate", "c-train", *bad])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0]
    # The store's listings describe tokenizers and runs in their own terms.
    toks = cli(runner, "tokenizer", "ls")
    assert [(t["name"], t["vocab_size"], t["eos_token"]) for t in toks] == [("c-train", 300, "<|endoftext|>")]
    listed = cli(runner, "ls", "--kind", "runs")
    assert listed[0]["summary"] == f"val loss {run['stats']['metrics']['val_loss']:.4f}, 20 steps"
    assert "also: 1 tokenizers, 1 runs" in runner.invoke(app, ["ls"]).stdout
    missing = runner.invoke(app, ["generate", "nope"])
    assert missing.exit_code == 2 and "no run named 'nope'" in missing.stderr
    assert json.loads(runner.invoke(app, ["generate", "c-train", "--max-tokens", "3", "--json"]).stdout)["run"]
