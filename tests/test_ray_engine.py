"""`--engine ray` gives the local engine's versions: same ref, rows, clusters.parquet and stats.

The equality tests start a local Ray cluster of 2 CPUs once for the module (about 5 s) and shut
it down after; they need the `ray` extra (`pip install 'datadiet[ray]'`, installed in CI) and are
skipped with that message on a machine without it.
"""

from __future__ import annotations

import random
import string
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from datadiet.cli import app
from datadiet.curate.dedupe import CLUSTERS_FILE, dedupe
from datadiet.curate.minhash import MinhashConfig
from datadiet.engine import check_engine, load_ray
from datadiet.errors import UsageError
from datadiet.schema import ID, TEXT
from datadiet.store import Dataset, PartWriter, Store
from tests.helpers import cli

# Ray's own modules warn about their deprecated settings while building their defaults.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


def _planted(seed: int = 0, originals: int = 2500) -> list[str]:
    """Random documents plus near copies (1-3 word edits), exact copies, a chain, and a 150-member flood."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(3000)]
    texts = [" ".join(rng.choices(vocab, k=rng.randint(40, 90))) for _ in range(originals)]

    def edit(text: str, changes: int) -> str:
        words = text.split()
        for i in rng.sample(range(len(words)), changes):
            words[i] = rng.choice(vocab) + "q"
        return " ".join(words)

    for src in rng.sample(range(originals), 400):
        for _ in range(rng.randint(1, 3)):
            r = rng.random()
            texts.append(texts[src].upper() + "!" if r < 0.25 else edit(texts[src], rng.randint(1, 3)))
    chain = texts[7]
    for _ in range(12):  # each link is J ~ 0.9 to the previous one, the ends far below 0.8
        chain = edit(chain, 1)
        texts.append(chain)
    # A bucket above cluster.ALL_PAIRS_MAX (32), so star edges are exercised too.
    texts.extend(texts[11] if i % 3 else edit(texts[11], 1) for i in range(150))
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [texts[i] for i in order]


def _dataset(store: Store, texts: list[str], parts: int = 3) -> str:
    def build(writer: PartWriter) -> dict[str, Any]:
        for chunk in np.array_split(np.arange(len(texts)), parts):
            writer.write(pl.DataFrame({ID: [f"d{i}" for i in chunk], TEXT: [texts[i] for i in chunk]}))
        return {}

    commit = store.commit("docs", operation="test", params={"n": len(texts)}, parents=[], build=build)
    return commit.dataset.ref


def _assert_same(a: Dataset, b: Dataset) -> None:
    assert a.ref == b.ref
    assert a.manifest.params == b.manifest.params
    assert a.read().equals(b.read())
    assert pl.read_parquet(a.path / CLUSTERS_FILE).equals(pl.read_parquet(b.path / CLUSTERS_FILE))
    sa = {k: v for k, v in a.manifest.stats.items() if k != "seconds"}
    sb = {k: v for k, v in b.manifest.stats.items() if k != "seconds"}
    assert sa == sb


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return _planted()


@pytest.mark.slow
@pytest.mark.parametrize(
    "cfg",
    [
        MinhashConfig(),
        MinhashConfig(keep="longest"),
        MinhashConfig(keep="random", seed=5, bands=32, rows=4),
        MinhashConfig(method="exact"),
    ],
    ids=["minhash-first", "minhash-longest", "minhash-random", "exact"],
)
def test_ray_dedupe_equals_local(ray_cluster: None, texts: list[str], tmp_path: Path, cfg: MinhashConfig) -> None:
    local, remote = Store(tmp_path / "local"), Store(tmp_path / "ray")
    ref = _dataset(local, texts)
    assert _dataset(remote, texts) == ref
    a = dedupe(local, ref, cfg, workers=1)
    b = dedupe(remote, ref, cfg, engine="ray")
    assert not b.up_to_date
    _assert_same(a.dataset, b.dataset)
    stats = b.dataset.manifest.stats
    # The planted clusters are found: 400 sources x 1-3 copies + chain + flood, minus chance misses.
    assert stats["docs_in"] == len(texts)
    assert stats["largest_cluster"] >= 101  # the 100 exact copies of one document and itself


@pytest.mark.slow
def test_ray_dedupe_empty_and_unique(ray_cluster: None, tmp_path: Path) -> None:
    local, remote = Store(tmp_path / "local"), Store(tmp_path / "ray")
    texts = ["alpha beta gamma delta epsilon zeta", "one two three four five six", ""]
    ref = _dataset(local, texts, parts=1)
    _dataset(remote, texts, parts=1)
    a = dedupe(local, ref, MinhashConfig(), workers=1)
    b = dedupe(remote, ref, MinhashConfig(), engine="ray")
    _assert_same(a.dataset, b.dataset)
    assert b.dataset.manifest.stats["removed"] == 0


def test_unsupported_options_are_one_line_errors(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    ref = _dataset(store, ["a b c d e f", "g h i j k l"], parts=1)
    with pytest.raises(UsageError, match="--engine must be one of local, ray"):
        check_engine("spark")
    with pytest.raises(UsageError, match="--against is not supported with --engine ray"):
        dedupe(store, ref, MinhashConfig(), against=_other(store), engine="ray")
    with pytest.raises(UsageError, match="--verify is not supported with --engine ray"):
        dedupe(store, ref, MinhashConfig(verify=True), engine="ray")


def _other(store: Store) -> str:
    commit = store.commit(
        "other",
        operation="test",
        params={},
        parents=[],
        build=lambda w: w.write(pl.DataFrame({ID: ["o"], TEXT: ["x"]})),
    )
    return commit.dataset.ref


def test_missing_ray_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(UsageError, match=r"pip install 'datadiet\[ray\]'") as err:
        load_ray()
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_cli_dedupe_engine_ray(ray_cluster: None, texts: list[str], store_path: Path, runner: CliRunner) -> None:
    ref = _dataset(Store(store_path), texts[:600])
    remote = cli(runner, "dedupe", ref, "--engine", "ray", "--name", "viaray")
    local = cli(runner, "dedupe", ref, "--name", "vialocal")
    assert remote["ref"].split("@")[1] == local["ref"].split("@")[1]
    result = runner.invoke(app, ["duplicate", ref, "--rate", "0.1", "--engine", "ray"])
    assert result.exit_code == 2
    assert "--engine ray is not supported for duplicate yet" in result.output
